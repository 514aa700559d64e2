//! Memory and free-disk watermarks (RabbitMQ's resource alarms). When either is
//! crossed the core raises an alarm and frontends hold publishers back; nothing
//! already accepted is dropped. Checked once a second; limits can change at run
//! time (SIGHUP reloads the configuration).

use crate::broker::Core;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Limits {
    /// Block publishers when the data directory's filesystem has less free space
    /// than this many bytes. RabbitMQ's default: 50 MB.
    pub disk_free_limit: u64,
    /// Block publishers when the broker's resident memory exceeds this many bytes;
    /// 0 = 40% of physical memory (RabbitMQ's `vm_memory_high_watermark` 0.4).
    pub memory_limit: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            disk_free_limit: 50_000_000,
            memory_limit: 0,
        }
    }
}

const EVERY: Duration = Duration::from_secs(1);

pub fn spawn_monitor(
    data_dir: PathBuf,
    mut limits: watch::Receiver<Limits>,
    core: Core,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let l = *limits.borrow_and_update();
            core.set_alarm(check(&data_dir, &l));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
                r = limits.changed() => if r.is_err() { return },
            }
        }
    });
}

fn check(dir: &Path, l: &Limits) -> Option<String> {
    if let Some(free) = free_disk(dir)
        && free < l.disk_free_limit
    {
        return Some(format!(
            "low on disk: {free} bytes free on the data directory's filesystem, limit {}",
            l.disk_free_limit
        ));
    }
    let limit = match l.memory_limit {
        0 => total_memory().map(|t| t / 10 * 4)?,
        n => n,
    };
    let rss = resident_memory()?;
    (rss > limit).then(|| format!("memory: {rss} bytes resident, limit {limit}"))
}

/// Free bytes for unprivileged users on the filesystem holding `dir`.
fn free_disk(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `st` points to writable
    // memory of the right type; statvfs only writes into it.
    let r = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    // The field widths differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_disk_limit_raises_and_zero_clears() {
        let dir = std::env::temp_dir();
        let high = Limits {
            disk_free_limit: u64::MAX,
            memory_limit: u64::MAX,
        };
        assert!(check(&dir, &high).is_some_and(|r| r.contains("disk")));
        let low = Limits {
            disk_free_limit: 0,
            memory_limit: u64::MAX,
        };
        assert_eq!(check(&dir, &low), None);
        let tiny_mem = Limits {
            disk_free_limit: 0,
            memory_limit: 1,
        };
        assert!(check(&dir, &tiny_mem).is_some_and(|r| r.contains("memory")));
    }
}
