//! When an invocation must stop working and answer: before Lambda's
//! deadline, so a batch is never killed mid-write.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The instant to stop at, from the context's deadline (epoch ms): `margin`
/// before it, or a quarter of the time left if that is less (a function with
/// a 3 s timeout must still work). No deadline, or one already past (cargo
/// lambda's local runtime sends such values), means a local run of `local`.
pub fn stop_at(deadline_ms: u64, margin: Duration, local: Duration) -> tokio::time::Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    tokio::time::Instant::now() + budget(deadline_ms, now_ms, margin, local)
}

fn budget(deadline_ms: u64, now_ms: u64, margin: Duration, local: Duration) -> Duration {
    if deadline_ms <= now_ms {
        return local;
    }
    let left = Duration::from_millis(deadline_ms - now_ms);
    left.saturating_sub(margin.min(left / 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        let s = Duration::from_secs;
        assert_eq!(budget(0, 1_000, s(3), s(900)), s(900));
        assert_eq!(
            budget(500, 1_000, s(3), s(900)),
            s(900),
            "a past deadline is no deadline"
        );
        assert_eq!(budget(61_000, 1_000, s(3), s(900)), s(57));
        assert_eq!(
            budget(4_000, 1_000, s(3), s(900)),
            Duration::from_millis(2_250),
            "3 s timeout keeps 75%"
        );
    }
}
