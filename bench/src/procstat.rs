//! Optional watch on the broker process (`--watch-pid`): peak resident memory
//! and CPU time used during a scenario, read from /proc (Linux only; elsewhere
//! the figures are simply absent).

use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kb: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, i.e. the 12th and 13th after ")".
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(ProcSample {
        rss_kb,
        cpu_ticks: utime + stime,
    })
}

/// CPU ticks all processes of the machine have used (user, nice, system and
/// steal from the first line of /proc/stat; not irq and softirq, which no
/// process is charged for: loopback TCP is mostly softirq), to tell how much of
/// a scenario's time other programs took.
pub fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Some(f.get(..3)?.iter().sum::<u64>() + f.get(7).copied().unwrap_or(0))
}

/// Clock ticks per second for /proc/PID/stat (USER_HZ; 100 on every Linux ABI
/// in practice, and sysconf is not reachable without libc).
pub const TICKS_PER_SEC: f64 = 100.0;

pub struct Watch {
    stop: watch::Sender<bool>,
    task: JoinHandle<(Option<ProcSample>, u64)>,
}

#[derive(Debug, Clone, Copy)]
pub struct WatchResult {
    pub rss_max_kb: u64,
    pub cpu_secs: f64,
}

impl Watch {
    /// Start sampling `pid` every 100 ms.
    pub fn start(pid: u32) -> Self {
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let first = sample(pid);
            let mut max_rss = first.map(|s| s.rss_kb).unwrap_or(0);
            loop {
                tokio::select! {
                    _ = rx.changed() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        if let Some(s) = sample(pid) { max_rss = max_rss.max(s.rss_kb); }
                    }
                }
            }
            (first, max_rss)
        });
        Self { stop, task }
    }

    pub async fn finish(self, pid: u32) -> Option<WatchResult> {
        let _ = self.stop.send(true);
        let (first, mut max_rss) = self.task.await.ok()?;
        let last = sample(pid)?;
        max_rss = max_rss.max(last.rss_kb);
        let first = first?;
        Some(WatchResult {
            rss_max_kb: max_rss,
            cpu_secs: last.cpu_ticks.saturating_sub(first.cpu_ticks) as f64 / TICKS_PER_SEC,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_self() {
        if cfg!(target_os = "linux") {
            let s = super::sample(std::process::id()).unwrap();
            assert!(s.rss_kb > 0);
            assert!(super::machine_busy_ticks().is_some());
        }
    }
}
