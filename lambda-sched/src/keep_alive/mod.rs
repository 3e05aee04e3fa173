//! Keep-alive: how long an idle environment is kept before it is reaped, and whether it is
//! unloaded at once and pre-warmed later.
//!
//! The worker manager asks the policy each time an environment becomes idle, and tells it
//! about every arrival, so a policy can learn a function's idle-time pattern. Two policies
//! ship: [`FixedTtl`] (the default: Lambda keeps idle environments for minutes) and
//! [`HybridHistogram`] (Shahrad et al., "Serverless in the Wild", USENIX ATC'20).

mod fixed_ttl;
mod hybrid_histogram;

use std::fmt;
use std::time::Duration;

pub use fixed_ttl::FixedTtl;
pub use hybrid_histogram::{HybridHistogram, HybridHistogramConfig};

use crate::ids::PoolId;

/// What to do with an environment that just became idle.
///
/// With `prewarm_after` zero the environment stays idle for `keep_alive` and is then reaped.
/// Otherwise it is shut down at once, a new one is created `prewarm_after` from now (ahead of
/// the predicted next invocation) and kept for `keep_alive` from then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long to wait, with nothing loaded, before pre-warming an environment.
    pub prewarm_after: Duration,
    /// How long the environment is kept idle (after the pre-warm, if any).
    pub keep_alive: Duration,
}

impl Retention {
    /// Keep the environment for `keep_alive`, no unloading.
    pub fn keep_for(keep_alive: Duration) -> Self {
        Retention {
            prewarm_after: Duration::ZERO,
            keep_alive,
        }
    }
}

/// A keep-alive policy. Implementations are shared between threads.
///
/// Both calls come with `busy`, the number of on-demand environments of the pool running an
/// invocation at that moment, not counting the one arriving or finishing. It tells a policy
/// which "slot" of a function's concurrency is concerned: an arrival with `busy = k` needs a
/// (k+1)-th environment, an environment that becomes idle with `busy = k` left was the
/// (k+1)-th. A policy for one environment per function ignores it.
///
/// The worker manager calls the policy with the pool's lock held: a policy must not call
/// back into the service.
pub trait KeepAlivePolicy: Send + Sync + fmt::Debug {
    /// A short name for tables and logs.
    fn name(&self) -> String;

    /// An invocation of `pool` that needs an on-demand environment arrived at `now`.
    fn on_arrival(&self, pool: PoolId, now: Duration, busy: u64) {
        let _ = (pool, now, busy);
    }

    /// An environment of `pool` finished an invocation at `now` and is idle.
    fn on_idle(&self, pool: PoolId, now: Duration, busy: u64) -> Retention;

    /// `pool` was retired (its function updated or deleted): forget what was learnt.
    fn forget(&self, pool: PoolId) {
        let _ = pool;
    }
}
