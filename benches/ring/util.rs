//! Small helpers shared by the bench's modules: durations in milliseconds, median and
//! percentile, progress lines, and the key that names every bench line (phase, client, number).
//!
//! Pure functions over numbers and strings, and the bench's exit: no processes, no sockets,
//! no files.

use crate::NO_KEY;
use sha2::{Digest, Sha256};
use std::thread;
use std::time::{Duration, Instant};

/// Serializes a duration as milliseconds (for the JSON report).
pub fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

/// Ends the run: the failures on stderr and exit 1, or a line that every check passed.
pub fn finish(start: Instant, failures: &[String]) {
    if !failures.is_empty() {
        eprintln!("\nFAILED:");
        for f in failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    progress(start, "done; every check passed");
}

/// Prints a progress line on stderr, with seconds since the bench started.
pub fn progress(start: Instant, text: &str) {
    eprintln!("[{:7.1}s] {text}", start.elapsed().as_secs_f64());
}

pub fn sleep_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        thread::sleep((at - now).min(Duration::from_millis(5)));
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median of a list (mean of the middle two for an even length); 0 for an empty list.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100); 0 for an empty list.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of a bench line: phase, client and number, packed into one `u64`.
pub fn key(phase: u64, client: usize, n: usize) -> u64 {
    (phase << 40) | ((client as u64) << 24) | n as u64
}

pub fn key_phase(key: u64) -> u64 {
    key >> 40
}

pub fn key_client(key: u64) -> usize {
    ((key >> 24) & 0xffff) as usize
}

pub fn key_n(key: u64) -> usize {
    (key & 0xff_ffff) as usize
}

/// Parses the key back out of a line text `b<phase>-<client>-<n> <padding>`.
pub fn parse_key(text: &str) -> u64 {
    let Some(rest) = text.strip_prefix('b') else {
        return NO_KEY;
    };
    let head = rest.split(' ').next().unwrap_or("");
    let mut parts = head.split('-').map(str::parse::<u64>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(p)), Some(Ok(c)), Some(Ok(n)), None) if p > 0 && c < 1 << 16 && n < 1 << 24 => {
            key(p, c as usize, n as usize)
        }
        _ => NO_KEY,
    }
}

/// Seconds from `from` to `to` (0 if `to` is earlier).
pub fn secs_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}
