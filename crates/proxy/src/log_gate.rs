//! A process-wide gate for log lines a hostile peer can cause at will (refused PROXY headers,
//! HTTP/2 glitch closures): at most one line per interval, saying how many were held back.
//!
//! Owns only the gate; what is counted in metrics is counted by the caller on every event.

use std::sync::atomic::{AtomicU64, Ordering};

/// Admits one event per `every_ms` milliseconds (time injected).
#[derive(Debug)]
pub(crate) struct LogGate {
    every_ms: u64,
    /// When the last admitted line was logged, plus one (0 = never).
    last_plus_one: AtomicU64,
    suppressed: AtomicU64,
}

impl LogGate {
    pub(crate) const fn new(every_ms: u64) -> Self {
        Self {
            every_ms,
            last_plus_one: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(events held back since the last line)` when this event may be logged.
    pub(crate) fn admit(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_plus_one.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last - 1) >= self.every_ms;
        if due
            && self
                .last_plus_one
                .compare_exchange(last, now_ms + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::LogGate;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let gate = LogGate::new(1000);
        assert_eq!(gate.admit(0), Some(0));
        assert_eq!(gate.admit(10), None);
        assert_eq!(gate.admit(999), None);
        assert_eq!(gate.admit(1000), Some(2));
        assert_eq!(gate.admit(1500), None);
        assert_eq!(gate.admit(5000), Some(1));
    }
}
