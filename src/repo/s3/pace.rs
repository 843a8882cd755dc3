//! Bandwidth: parsing a configured rate, and pacing transfers under it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// "8MiB/s", "500 KB/s", "1048576": bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t).trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. \"8MiB/s\" or \"500KB/s\")"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "KiB" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "G" | "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit (use B, KB, KiB, MB, MiB, GB or GiB per second)"
            ))
        }
    };
    let v = n * mult;
    // Also catches NaN and infinity from odd input.
    if !v.is_finite() || v < 1024.0 {
        return Err(format!(
            "{s:?}: a bandwidth limit below 1 KiB/s would never finish"
        ));
    }
    Ok(v as u64)
}

/// Spaces transfers so their average rate stays under the limit. Coarse
/// (whole objects), which is what a limit on a shared uplink needs.
pub(super) struct Pacer {
    pub(super) bytes_per_sec: u64,
    pub(super) next: Mutex<Instant>,
}

impl Pacer {
    /// Counts a small object against the limit without queueing it: an
    /// index file must not wait behind packs already scheduled, or an
    /// interrupted copy would lose what those index files record.
    pub(super) fn charge(&self, bytes: usize) {
        if let Ok(mut next) = self.next.lock() {
            let now = Instant::now();
            *next = (*next).max(now)
                + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        }
    }

    pub(super) fn wait(&self, bytes: usize) {
        let now = Instant::now();
        let start = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            start
        };
        if start > now {
            std::thread::sleep(start - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("8MiB/s").unwrap(), 8 * 1024 * 1024);
        assert_eq!(parse_rate("500 KB/s").unwrap(), 500_000);
        assert_eq!(parse_rate("2048").unwrap(), 2048);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10").is_err());
    }
}
