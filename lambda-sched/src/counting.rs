//! The counting service: account and reserved concurrency, and the per-function scale-up
//! token bucket.
//!
//! Every running invocation holds a permit. A function with reserved concurrency `R`
//! counts against its own `R` (and nothing else can use it); every other function shares the
//! unreserved pool, `account limit - sum of reservations`, which never drops below the
//! configured minimum (100, as Lambda keeps). Permits are released on drop, so no error path
//! can leak a slot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result, ThrottleReason};
use crate::sync::lock;

const NO_RESERVATION: u64 = u64::MAX;

/// Limits the counting service enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyLimits {
    /// Concurrent executions of the whole account (Lambda's default: 1,000).
    pub account_concurrency: u32,
    /// Concurrency that reservations must leave to functions without one (Lambda: 100).
    pub min_unreserved_concurrency: u32,
    /// New environments a function may create in a burst (Lambda: 1,000).
    pub scale_up_burst: u32,
    /// Time to refill the whole burst, continuously (Lambda: 10 s, i.e. 100 per second).
    pub scale_up_refill: Duration,
    /// The `Retry-After` given with concurrency throttles.
    pub throttle_retry_after: Duration,
}

impl Default for ConcurrencyLimits {
    fn default() -> Self {
        ConcurrencyLimits {
            account_concurrency: 1_000,
            min_unreserved_concurrency: 100,
            scale_up_burst: 1_000,
            scale_up_refill: Duration::from_secs(10),
            throttle_retry_after: Duration::from_secs(1),
        }
    }
}

impl ConcurrencyLimits {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.account_concurrency == 0
            || self.min_unreserved_concurrency > self.account_concurrency
        {
            return Err(Error::invalid(format!(
                "account concurrency {} must be at least 1 and at least the minimum unreserved \
                 concurrency {}",
                self.account_concurrency, self.min_unreserved_concurrency
            )));
        }
        if self.scale_up_burst == 0 || self.scale_up_refill.is_zero() {
            return Err(Error::invalid(
                "the scale-up burst and refill time must be positive",
            ));
        }
        Ok(())
    }
}

/// One function's concurrency state.
#[derive(Debug)]
pub(crate) struct FunctionSlots {
    reserved: AtomicU64,
    in_flight: AtomicU64,
    bucket: Mutex<TokenBucket>,
}

impl FunctionSlots {
    pub(crate) fn new(limits: &ConcurrencyLimits, now: Duration) -> Self {
        FunctionSlots {
            reserved: AtomicU64::new(NO_RESERVATION),
            in_flight: AtomicU64::new(0),
            bucket: Mutex::new(TokenBucket::new(
                limits.scale_up_burst,
                limits.scale_up_refill,
                now,
            )),
        }
    }

    /// The function's reserved concurrency, if it has one.
    pub(crate) fn reserved(&self) -> Option<u32> {
        match self.reserved.load(Ordering::Acquire) {
            NO_RESERVATION => None,
            n => Some(n as u32),
        }
    }

    /// Invocations of the function running now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Takes one scale-up token, or says when one will be available.
    pub(crate) fn take_scale_up_token(&self, now: Duration) -> Result<()> {
        let mut bucket = lock(&self.bucket);
        bucket.take(now).map_err(|retry_after| {
            Error::throttled(
                ThrottleReason::FunctionInvocationRateLimitExceeded,
                retry_after,
                format!(
                    "the function may create at most {} new execution environments per {:?}",
                    bucket.capacity as u64, bucket.refill
                ),
            )
        })
    }
}

/// A token bucket refilled continuously.
#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    refill: Duration,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    fn new(capacity: u32, refill: Duration, now: Duration) -> Self {
        TokenBucket {
            capacity: f64::from(capacity),
            refill,
            tokens: f64::from(capacity),
            last: now,
        }
    }

    fn rate_per_sec(&self) -> f64 {
        self.capacity / self.refill.as_secs_f64()
    }

    fn take(&mut self, now: Duration) -> std::result::Result<(), Duration> {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec()).min(self.capacity);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err(Duration::from_secs_f64(missing / self.rate_per_sec()))
        }
    }
}

/// The account-wide counters.
#[derive(Debug)]
pub(crate) struct CountingService {
    limits: ConcurrencyLimits,
    unreserved_limit: AtomicU64,
    unreserved_in_flight: AtomicU64,
    total_in_flight: AtomicU64,
    reservations: Mutex<HashMap<String, u32>>,
}

/// One running invocation's claim on concurrency; released on drop.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    counting: &'a CountingService,
    slots: &'a FunctionSlots,
    unreserved: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.slots.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.unreserved {
            self.counting
                .unreserved_in_flight
                .fetch_sub(1, Ordering::AcqRel);
        }
        self.counting.total_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Increments `counter` if it is below `limit`.
fn try_increment(counter: &AtomicU64, limit: u64) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl CountingService {
    pub(crate) fn new(limits: ConcurrencyLimits) -> Self {
        CountingService {
            unreserved_limit: AtomicU64::new(u64::from(limits.account_concurrency)),
            limits,
            unreserved_in_flight: AtomicU64::new(0),
            total_in_flight: AtomicU64::new(0),
            reservations: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn limits(&self) -> &ConcurrencyLimits {
        &self.limits
    }

    /// Claims one concurrency slot for an invocation of the function owning `slots`.
    pub(crate) fn acquire<'a>(
        &'a self,
        function: &str,
        slots: &'a FunctionSlots,
    ) -> Result<Permit<'a>> {
        let reserved = slots.reserved.load(Ordering::Acquire);
        let unreserved = reserved == NO_RESERVATION;
        if unreserved {
            let limit = self.unreserved_limit.load(Ordering::Acquire);
            if !try_increment(&self.unreserved_in_flight, limit) {
                return Err(Error::throttled(
                    ThrottleReason::ConcurrentInvocationLimitExceeded,
                    self.limits.throttle_retry_after,
                    format!(
                        "all {limit} unreserved concurrent executions of the account are in use \
                         (account limit {}); reserve concurrency for {function:?} or retry later",
                        self.limits.account_concurrency
                    ),
                ));
            }
            slots.in_flight.fetch_add(1, Ordering::AcqRel);
        } else if !try_increment(&slots.in_flight, reserved) {
            let message = if reserved == 0 {
                format!("function {function:?} has reserved concurrency 0: it is disabled")
            } else {
                format!("all {reserved} reserved concurrent executions of {function:?} are in use")
            };
            return Err(Error::throttled(
                ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
                self.limits.throttle_retry_after,
                message,
            ));
        }
        self.total_in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(Permit {
            counting: self,
            slots,
            unreserved,
        })
    }

    /// Whether an invocation would get a slot now (for `DryRun`; nothing is claimed).
    pub(crate) fn check(&self, function: &str, slots: &FunctionSlots) -> Result<()> {
        self.acquire(function, slots).map(drop)
    }

    /// Sets (`Some`) or removes (`None`) a function's reserved concurrency.
    pub(crate) fn set_reserved(
        &self,
        function: &str,
        slots: &FunctionSlots,
        reserved: Option<u32>,
    ) -> Result<()> {
        let mut reservations = lock(&self.reservations);
        let others: u64 = reservations
            .iter()
            .filter(|(name, _)| name.as_str() != function)
            .map(|(_, n)| u64::from(*n))
            .sum();
        let account = u64::from(self.limits.account_concurrency);
        let floor = u64::from(self.limits.min_unreserved_concurrency);
        if let Some(n) = reserved {
            let max = account.saturating_sub(floor).saturating_sub(others);
            if u64::from(n) > max {
                return Err(Error::invalid(format!(
                    "reserved concurrency {n} for {function:?} would leave less than {floor} \
                     unreserved concurrency (account limit {account}, reserved by other \
                     functions {others}); choose at most {max}"
                )));
            }
            reservations.insert(function.to_string(), n);
        } else {
            reservations.remove(function);
        }
        let total = others + u64::from(reserved.unwrap_or(0));
        self.unreserved_limit
            .store(account - total, Ordering::Release);
        slots.reserved.store(
            reserved.map_or(NO_RESERVATION, u64::from),
            Ordering::Release,
        );
        Ok(())
    }

    /// Drops a deleted function's reservation.
    pub(crate) fn forget(&self, function: &str) {
        let mut reservations = lock(&self.reservations);
        reservations.remove(function);
        let total: u64 = reservations.values().map(|n| u64::from(*n)).sum();
        self.unreserved_limit.store(
            u64::from(self.limits.account_concurrency) - total,
            Ordering::Release,
        );
    }

    /// The largest reservation `function` could get now.
    pub(crate) fn available_reservation(&self, function: &str) -> u32 {
        let reservations = lock(&self.reservations);
        let others: u64 = reservations
            .iter()
            .filter(|(name, _)| name.as_str() != function)
            .map(|(_, n)| u64::from(*n))
            .sum();
        let max = u64::from(self.limits.account_concurrency)
            .saturating_sub(u64::from(self.limits.min_unreserved_concurrency))
            .saturating_sub(others);
        u32::try_from(max).unwrap_or(u32::MAX)
    }

    /// Invocations running now, over the whole account.
    pub(crate) fn total_in_flight(&self) -> u64 {
        self.total_in_flight.load(Ordering::Acquire)
    }

    /// Invocations of functions without reserved concurrency running now.
    pub(crate) fn unreserved_in_flight(&self) -> u64 {
        self.unreserved_in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(account: u32) -> ConcurrencyLimits {
        ConcurrencyLimits {
            account_concurrency: account,
            min_unreserved_concurrency: 1,
            ..ConcurrencyLimits::default()
        }
    }

    #[test]
    fn account_limit_throttles_and_permits_release() {
        let counting = CountingService::new(limits(2));
        let slots = FunctionSlots::new(counting.limits(), Duration::ZERO);
        let a = counting.acquire("f", &slots).unwrap();
        let b = counting.acquire("f", &slots).unwrap();
        let err = counting.acquire("f", &slots).unwrap_err();
        assert!(matches!(
            err,
            Error::TooManyRequests {
                reason: ThrottleReason::ConcurrentInvocationLimitExceeded,
                ..
            }
        ));
        assert_eq!(counting.total_in_flight(), 2);
        drop(a);
        assert_eq!(slots.in_flight(), 1);
        let _c = counting.acquire("f", &slots).unwrap();
        drop(b);
        assert_eq!(counting.unreserved_in_flight(), 1);
    }

    #[test]
    fn reservations_guarantee_cap_and_leave_the_minimum() {
        let counting = CountingService::new(ConcurrencyLimits {
            account_concurrency: 10,
            min_unreserved_concurrency: 3,
            ..ConcurrencyLimits::default()
        });
        let f = FunctionSlots::new(counting.limits(), Duration::ZERO);
        let g = FunctionSlots::new(counting.limits(), Duration::ZERO);
        assert!(matches!(
            counting.set_reserved("f", &f, Some(8)),
            Err(Error::InvalidParameterValue { .. })
        ));
        counting.set_reserved("f", &f, Some(4)).unwrap();
        assert_eq!(counting.available_reservation("g"), 3);
        assert!(counting.set_reserved("g", &g, Some(4)).is_err());
        // f is capped at 4 ...
        let held: Vec<_> = (0..4).map(|_| counting.acquire("f", &f).unwrap()).collect();
        let err = counting.acquire("f", &f).unwrap_err();
        assert!(matches!(
            err,
            Error::TooManyRequests {
                reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
                ..
            }
        ));
        // ... and g shares the 6 unreserved.
        let g_held: Vec<_> = (0..6).map(|_| counting.acquire("g", &g).unwrap()).collect();
        assert!(counting.acquire("g", &g).is_err());
        drop(held);
        drop(g_held);
        assert_eq!(counting.total_in_flight(), 0);
        counting.set_reserved("f", &f, Some(0)).unwrap();
        let disabled = counting.acquire("f", &f).unwrap_err().to_string();
        assert!(disabled.contains("disabled"), "{disabled}");
        counting.set_reserved("f", &f, None).unwrap();
        counting.acquire("f", &f).unwrap();
    }

    #[test]
    fn scale_up_bucket_refills_continuously() {
        let limits = ConcurrencyLimits {
            scale_up_burst: 10,
            scale_up_refill: Duration::from_secs(10),
            ..ConcurrencyLimits::default()
        };
        let slots = FunctionSlots::new(&limits, Duration::ZERO);
        for _ in 0..10 {
            slots.take_scale_up_token(Duration::ZERO).unwrap();
        }
        let err = slots.take_scale_up_token(Duration::ZERO).unwrap_err();
        match err {
            Error::TooManyRequests {
                reason: ThrottleReason::FunctionInvocationRateLimitExceeded,
                retry_after,
                ..
            } => assert_eq!(retry_after, Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        // One token per second comes back.
        slots
            .take_scale_up_token(Duration::from_millis(1000))
            .unwrap();
        assert!(
            slots
                .take_scale_up_token(Duration::from_millis(1500))
                .is_err()
        );
        // Unused rate does not accumulate past the burst.
        for _ in 0..10 {
            slots
                .take_scale_up_token(Duration::from_secs(1000))
                .unwrap();
        }
        assert!(
            slots
                .take_scale_up_token(Duration::from_secs(1000))
                .is_err()
        );
    }
}
