//! Times as the Engine API writes them.

use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 of seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}
