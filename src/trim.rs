//! Gives freed memory back to the system. glibc's allocator keeps what a drained
//! backlog used (free chunks between live ones are never returned on their own:
//! 240 MiB stayed after 300,000 messages of 1 KiB were purged, bench/
//! memory_return.py), so every [`EVERY`], while the process holds more than
//! [`FLOOR`], `malloc_trim(0)` releases the free pages of every arena. It walks the
//! free lists once (milliseconds on a large heap), on a blocking thread so no
//! connection waits for it.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(10);
const FLOOR: u64 = 64 * 1024 * 1024;

pub fn spawn_trimmer(stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            if rss_bytes().is_some_and(|r| r > FLOOR) {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    });
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free
    // memory; it takes the arenas' locks like any malloc call.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
