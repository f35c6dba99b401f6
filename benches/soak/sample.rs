//! What the soak samples from `/proc` and the data dirs, and how it judges growth: per process
//! its resident memory, open file descriptors and threads; per data dir its size and the part
//! of it that is not the replica (checkpoint, journal, lock, leftovers). A least-squares line
//! through the samples after a warm-up gives each series a slope, which must stay under the
//! limit stated in [`LIMITS`].
//!
//! Reads only: it never signals or starts a process. A process that exits between two reads
//! gives no sample, never an error.

use serde::Serialize;
use std::fs;
use std::path::Path;

/// One reading of one process and its data dir.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the soak started.
    pub t: f64,
    pub rss_kib: f64,
    pub fds: f64,
    pub threads: f64,
    /// Every file in the data dir.
    pub dir_bytes: f64,
    /// The data dir without the replica: what must not grow with the history.
    pub other_bytes: f64,
}

/// What a series is judged on, its unit, and the largest slope per minute that passes.
pub struct Limit {
    pub name: &'static str,
    pub unit: &'static str,
    pub per_min: f64,
    pub get: fn(&Sample) -> f64,
}

/// The limits. Memory grows in steps of a few hundred KiB while buffers reach their working
/// size (a catch-up served, a view of five members), which a short series must not mistake
/// for a leak; one allocation of 350 bytes per line at the soak's 50 lines/s, a descriptor or
/// a thread per join, or a file that is never compacted crosses them within the default run.
pub const LIMITS: &[Limit] = &[
    Limit {
        name: "RSS",
        unit: "KiB",
        per_min: 1024.0,
        get: |s| s.rss_kib,
    },
    Limit {
        name: "open fds",
        unit: "fds",
        per_min: 0.5,
        get: |s| s.fds,
    },
    Limit {
        name: "threads",
        unit: "threads",
        per_min: 0.5,
        get: |s| s.threads,
    },
    Limit {
        name: "data dir without the replica",
        unit: "KiB",
        per_min: 64.0,
        get: |s| s.other_bytes / 1024.0,
    },
];

/// Reads process `pid` and data dir `dir` at `t`; `None` if the process is gone.
pub fn sample(t: f64, pid: u32, dir: &Path) -> Option<Sample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let (dir_bytes, replica_bytes) = dir_sizes(dir);
    Some(Sample {
        t,
        rss_kib: field("VmRSS:")?,
        fds: fds as f64,
        threads: field("Threads:")?,
        dir_bytes: dir_bytes as f64,
        other_bytes: dir_bytes.saturating_sub(replica_bytes) as f64,
    })
}

/// Bytes of the files in `dir` (not below it), and of its replica among them.
pub fn dir_sizes(dir: &Path) -> (u64, u64) {
    let (mut all, mut replica) = (0, 0);
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        all += meta.len();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("replica_") && name.ends_with(".jsonl") {
            replica += meta.len();
        }
    }
    (all, replica)
}

/// Least-squares slope of `y` against `t` (per second); 0 with fewer than two distinct `t`.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_y)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

/// One judged series: a process (or a data dir across restarts) and one limit.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub series: String,
    pub metric: &'static str,
    pub unit: &'static str,
    pub samples: usize,
    /// Seconds of samples after the warm-up.
    pub span_s: f64,
    pub first: f64,
    pub last: f64,
    pub max: f64,
    pub slope_per_min: f64,
    pub limit_per_min: f64,
    /// Judged only with enough samples after the warm-up; otherwise reported.
    pub judged: bool,
    pub passed: bool,
}

/// Judges `samples` of one series against `limits`: only samples taken `warmup_s` or more
/// after the series' first, and only if they span `min_span_s`.
pub fn judge(
    series: &str,
    samples: &[Sample],
    limits: &[&Limit],
    warmup_s: f64,
    min_span_s: f64,
) -> Vec<Verdict> {
    let Some(start) = samples.first().map(|s| s.t) else {
        return Vec::new();
    };
    let kept: Vec<&Sample> = samples.iter().filter(|s| s.t >= start + warmup_s).collect();
    let span_s = match (kept.first(), kept.last()) {
        (Some(a), Some(b)) => b.t - a.t,
        _ => 0.0,
    };
    limits
        .iter()
        .map(|limit| {
            let points: Vec<(f64, f64)> = kept.iter().map(|s| (s.t, (limit.get)(s))).collect();
            let slope_per_min = slope(&points) * 60.0;
            let judged = span_s >= min_span_s;
            let value = |s: Option<&&Sample>| s.map_or(0.0, |s| (limit.get)(s));
            Verdict {
                series: series.to_string(),
                metric: limit.name,
                unit: limit.unit,
                samples: kept.len(),
                span_s,
                first: value(kept.first()),
                last: value(kept.last()),
                max: points.iter().map(|p| p.1).fold(0.0, f64::max),
                slope_per_min,
                limit_per_min: limit.per_min,
                judged,
                passed: !judged || slope_per_min <= limit.per_min,
            }
        })
        .collect()
}
