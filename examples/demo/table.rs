//! The end of the demo: the four replicas side by side with their sizes and SHA-256, and the
//! check that they are byte-identical and hold every typed line exactly once.
//!
//! It only reads the replica files and prints; it must not start, stop or wait for a node.

use crate::process::replica_file;
use crate::stage::{Demo, ALICE, BOB, CAROL, SERVER};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::Path;

/// Width of one replica's column in the side-by-side table.
const COLUMN: usize = 22;

impl Demo {
    /// Prints the replicas side by side with their sizes and SHA-256, and checks that they are
    /// identical and hold every typed line exactly once.
    pub fn compare(&mut self, typed: &[String]) -> Result<(), String> {
        let order = [SERVER, ALICE, BOB, CAROL];
        let replicas: Vec<Vec<u8>> = order.iter().map(|&i| self.nodes[i].replica()).collect();
        let rows: Vec<Vec<String>> = replicas.iter().map(|r| replica_rows(r)).collect();
        let header: Vec<String> = order
            .iter()
            .map(|&i| match replica_file(&self.nodes[i].dir).ok() {
                Some(p) if short_file_name(&p) == self.nodes[i].name => {
                    self.nodes[i].name.to_string()
                }
                Some(p) => format!("{} {}", self.nodes[i].name, short_file_name(&p)),
                None => format!("{} (no replica)", self.nodes[i].name),
            })
            .collect();
        println!();
        print_row(&header);
        print_row(&vec!["-".repeat(COLUMN); order.len()]);
        let height = rows.iter().map(Vec::len).max().unwrap_or(0);
        for r in 0..height {
            let cells: Vec<String> = rows
                .iter()
                .map(|col| col.get(r).cloned().unwrap_or_default())
                .collect();
            print_row(&cells);
        }
        print_row(&vec!["-".repeat(COLUMN); order.len()]);
        let sizes: Vec<String> = replicas
            .iter()
            .zip(&rows)
            .map(|(r, rows)| format!("{} lines, {} bytes", rows.len(), r.len()))
            .collect();
        print_row(&sizes);
        let sums: Vec<String> = replicas
            .iter()
            .map(|r| format!("sha256 {}", &hex(&Sha256::digest(r))[..12]))
            .collect();
        print_row(&sums);
        println!();
        let identical = replicas.iter().all(|r| *r == replicas[0]);
        let check = exactly_once(&replicas[0], typed);
        self.say(&format!(
            "{} replicas byte-identical: {}; every one of the {} typed lines exactly once: {}",
            replicas.len(),
            yes_no(identical),
            typed.len(),
            match &check {
                Ok(()) => "yes".to_string(),
                Err(e) => format!("no ({e})"),
            }
        ));
        println!("full SHA-256: {}", hex(&Sha256::digest(&replicas[0])));
        match (identical, check) {
            (true, Ok(())) => Ok(()),
            (false, _) => Err("the replicas differ".into()),
            (_, Err(e)) => Err(e),
        }
    }
}

pub fn fmt_code(code: Option<i32>) -> String {
    code.map_or("by signal".into(), |c| c.to_string())
}

pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// Gapless seqs from 1, unique ids, and exactly the typed lines, each once.
pub fn exactly_once(replica: &[u8], typed: &[String]) -> Result<(), String> {
    let text = std::str::from_utf8(replica).map_err(|e| format!("replica is not UTF-8: {e}"))?;
    let mut ids = HashSet::new();
    let mut texts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if v["seq"].as_u64() != Some(i as u64 + 1) {
            return Err(format!("line {} has seq {}", i + 1, v["seq"]));
        }
        if !ids.insert(v["id"].to_string()) {
            return Err(format!("id {} twice", v["id"]));
        }
        texts.push(v["text"].as_str().unwrap_or_default().to_string());
    }
    let mut got = texts.clone();
    let mut want = typed.to_vec();
    got.sort();
    want.sort();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{} lines in the replica, {} typed",
            got.len(),
            want.len()
        ))
    }
}

/// One cell per record: `#seq name: text`, cut to the column width.
pub fn replica_rows(replica: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(replica)
        .lines()
        .map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => format!(
                    "#{} {}: {}",
                    v["seq"],
                    v["name"].as_str().unwrap_or("?"),
                    v["text"].as_str().unwrap_or("?")
                ),
                Err(_) => format!("(bad line) {line}"),
            },
        )
        .map(|cell| fit(&cell, COLUMN))
        .collect()
}

/// `[#seq HH:MM:SS] name: text` for a client's `--json` message event; `None` otherwise.
pub fn chat_line(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    (v["event"] == "message").then(|| {
        format!(
            "#{} {}: {}",
            v["seq"],
            v["name"].as_str().unwrap_or("?"),
            v["text"].as_str().unwrap_or("?")
        )
    })
}

pub fn print_row(cells: &[String]) {
    let padded: Vec<String> = cells
        .iter()
        .map(|c| format!("{:<COLUMN$}", fit(c, COLUMN)))
        .collect();
    println!("{}", padded.join(" | ").trim_end());
}

/// Cuts `s` to `width` characters, marking a cut with `~`.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(width - 1).collect();
        cut.push('~');
        cut
    }
}

/// `replica_e70ecd78-....jsonl` -> `e70ecd78`, `replica_server.jsonl` -> `server`: the
/// identity part of a replica's file name, short.
pub fn short_file_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = name
        .strip_prefix("replica_")
        .and_then(|r| r.strip_suffix(".jsonl"))
        .unwrap_or(&name);
    id.chars().take(8).collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
