//! Readers of `/proc` (Linux): CPU time, context switches and resident memory of a process,
//! and the bench's own limits of open files and processes, with a way to raise its soft limit
//! of open files.
//!
//! Best effort: a missing file gives `None`, never an error. It never signals or starts a
//! process except `getconf CLK_TCK` and `prlimit` on the bench's own pid (no libc binding is
//! a dependency).

use std::process::Command;

/// CPU time of a process in seconds: the sum of its threads' `schedstat` run times (ns
/// resolution), or utime + stime from `stat` (clock ticks) where schedstat is missing.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    schedstat_secs(pid).or_else(|| stat_ticks(pid).map(|t| t as f64 / clock_ticks()))
}

pub fn schedstat_secs(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// utime + stime of every thread of a process, in clock ticks.
pub fn stat_ticks(pid: u32) -> Option<u64> {
    user_system_ticks(pid).map(|(u, s)| u + s)
}

/// utime and stime of every thread of a process, in clock ticks.
fn user_system_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start with field 3, the state.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime, stime))
}

/// What a process has used so far: CPU time (schedstat, ns resolution), its user and
/// system shares (`stat`, clock ticks) and its context switches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub user_ticks: u64,
    pub system_ticks: u64,
    pub switches: u64,
}

impl Usage {
    /// The usage of `pid` now (zeros where a file is missing).
    pub fn of(pid: u32) -> Usage {
        let (user_ticks, system_ticks) = user_system_ticks(pid).unwrap_or_default();
        Usage {
            cpu_s: cpu_secs(pid).unwrap_or(0.0),
            user_ticks,
            system_ticks,
            switches: context_switches(pid).unwrap_or(0),
        }
    }

    /// The sum over `pids`.
    pub fn total(pids: &[u32]) -> Usage {
        pids.iter()
            .map(|&p| Usage::of(p))
            .fold(Usage::default(), |a, b| Usage {
                cpu_s: a.cpu_s + b.cpu_s,
                user_ticks: a.user_ticks + b.user_ticks,
                system_ticks: a.system_ticks + b.system_ticks,
                switches: a.switches + b.switches,
            })
    }

    /// What was used between `before` and `self`.
    pub fn since(&self, before: &Usage) -> Usage {
        Usage {
            cpu_s: (self.cpu_s - before.cpu_s).max(0.0),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            system_ticks: self.system_ticks.saturating_sub(before.system_ticks),
            switches: self.switches.saturating_sub(before.switches),
        }
    }

    /// The user share of the CPU time, in % (from the ticks).
    pub fn user_pct(&self) -> f64 {
        let all = self.user_ticks + self.system_ticks;
        100.0 * self.user_ticks as f64 / all.max(1) as f64
    }
}

/// Context switches (voluntary + involuntary) summed over the live threads of a process: how
/// often its threads woke up.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// Resident memory of a process in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, 100 if that fails).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The soft and hard limits named `what` (`Max open files`, `Max processes`) of this process,
/// from `/proc/self/limits`; `u64::MAX` for `unlimited`.
pub fn own_limit(what: &str) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with(what))?;
    let mut values = line[what.len()..].split_whitespace().map(|v| match v {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    });
    Some((values.next()??, values.next()??))
}

/// Raises this process's soft limit of open files to `needed` (within the hard limit) with
/// `prlimit`; returns the soft limit in force afterwards.
pub fn raise_open_files(needed: u64) -> Option<u64> {
    let (soft, hard) = own_limit("Max open files")?;
    if soft >= needed {
        return Some(soft);
    }
    let target = needed.min(hard);
    let _ = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={target}:"))
        .status();
    own_limit("Max open files").map(|(soft, _)| soft)
}
