//! The architecture, checked: dependencies between the layers of `src/` point down (the
//! crate docs' "Layout"), every source file says what it is in a `//!` header, and no source
//! file grows past 700 lines.
//!
//! Reads the source tree as text; runs nothing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Each layer and the layers it may use. The protocol uses only itself; everything that does
/// I/O sits above it; the programs sit on top.
const ALLOWED: &[(&str, &[&str])] = &[
    ("protocol", &[]),
    ("store", &["protocol"]),
    ("replica", &["protocol", "store"]),
    ("checkpoint", &["protocol", "store"]),
    ("net", &["protocol"]),
    (
        "runtime",
        &["protocol", "store", "replica", "checkpoint", "net"],
    ),
    ("ui", &["protocol", "runtime"]),
    (
        "app",
        &[
            "protocol",
            "store",
            "replica",
            "checkpoint",
            "net",
            "runtime",
            "ui",
        ],
    ),
];

const MAX_LINES: usize = 700;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file belongs to: its first directory under `src/`, or its stem for a file at
/// the root; `token_ring.rs` is declared inside `protocol`.
fn layer(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    match name {
        "lib" | "bin" => None,
        "token_ring" => Some("protocol".into()),
        other => Some(other.into()),
    }
}

/// The layers named as `crate::LAYER` in code (comments and inline unit-test modules left
/// out).
fn used_layers(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut used = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.insert(match name.as_str() {
                "token_ring" => "protocol".to_string(),
                _ => name,
            });
        }
    }
    used
}

#[test]
fn dependencies_point_down_the_layers() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    // Unit-test files may borrow fixtures from anywhere; the layering is about the code.
    for path in files.iter().filter(|p| !p.ends_with("tests.rs")) {
        let Some(layer) = layer(path) else { continue };
        let allowed = ALLOWED
            .iter()
            .find(|(l, _)| *l == layer)
            .unwrap_or_else(|| panic!("{}: layer {layer} is not in ALLOWED", path.display()))
            .1;
        let text = fs::read_to_string(path).expect("read source");
        // Names that are not layers are items of the crate root (lib.rs), open to all.
        let layers = used_layers(&text)
            .into_iter()
            .filter(|u| ALLOWED.iter().any(|(l, _)| l == u));
        for used in layers {
            if used != layer && !allowed.contains(&used.as_str()) {
                wrong.push(format!("{} ({layer}) uses {used}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn every_source_file_has_a_header_and_fits_on_a_few_screens() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut wrong = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).expect("read source");
        if !text.starts_with("//!") {
            wrong.push(format!("{}: no //! header", path.display()));
        }
        let lines = text.lines().count();
        if lines > MAX_LINES {
            wrong.push(format!("{}: {lines} lines", path.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_layer_checker_sees_a_violation() {
    let used = used_layers("use crate::app::cli; // crate::ui\nfn f() { crate::token_ring::x() }");
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["app".to_string(), "protocol".to_string()]
    );
}
