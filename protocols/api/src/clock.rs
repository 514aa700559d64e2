//! Wall-clock time as the journal and the wire formats count it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. Deadlines written to the journal and message
/// timestamps must mean the same after a restart, which `Instant` does not; a clock
/// set before 1970 reads as 0 rather than failing.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch (MQTT expiry, x-death times, SigV4 dates).
pub fn wall_secs() -> u64 {
    wall_ms() / 1000
}
