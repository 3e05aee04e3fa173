//! The fixed time-to-live policy: every idle environment is kept for the same time.

use std::time::Duration;

use super::{KeepAlivePolicy, Retention};
use crate::ids::PoolId;

/// Keeps every idle environment for a fixed time (default 10 minutes, the figure usually
/// given for Lambda; Azure Functions used 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedTtl {
    ttl: Duration,
}

impl FixedTtl {
    /// The default idle time: 10 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

    /// A policy keeping idle environments for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        FixedTtl { ttl }
    }

    /// The time an idle environment is kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl Default for FixedTtl {
    fn default() -> Self {
        FixedTtl::new(Self::DEFAULT_TTL)
    }
}

impl KeepAlivePolicy for FixedTtl {
    fn name(&self) -> String {
        format!("fixed TTL {} min", self.ttl.as_secs_f64() / 60.0)
    }

    fn on_idle(&self, _pool: PoolId, _now: Duration, _busy: u64) -> Retention {
        Retention::keep_for(self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_the_same_ttl() {
        let policy = FixedTtl::new(Duration::from_secs(60));
        policy.on_arrival(PoolId(1), Duration::ZERO, 0);
        assert_eq!(
            policy.on_idle(PoolId(1), Duration::from_secs(5), 3),
            Retention::keep_for(Duration::from_secs(60))
        );
        assert_eq!(FixedTtl::default().ttl(), Duration::from_secs(600));
        assert_eq!(policy.name(), "fixed TTL 1 min");
    }
}
