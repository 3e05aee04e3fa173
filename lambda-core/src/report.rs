//! The figures of one invocation and Lambda's `REPORT` line.

use std::fmt;
use std::time::Duration;

/// What one invocation cost, as Lambda reports it at its end.
///
/// `Display` prints Lambda's tab-separated `REPORT` line:
///
/// ```
/// # use std::time::Duration;
/// # use lambda_core::Report;
/// let report = Report {
///     request_id: "8f5e0b6a-0000-4000-8000-000000000000".into(),
///     duration: Duration::from_micros(1_234),
///     memory_size_mb: 128,
///     max_memory_used_mb: 3,
///     init_duration: None,
///     restore_duration: None,
/// };
/// assert_eq!(
///     report.to_string(),
///     "REPORT RequestId: 8f5e0b6a-0000-4000-8000-000000000000\tDuration: 1.23 ms\t\
///      Billed Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 3 MB"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The invocation's request id.
    pub request_id: String,
    /// Time spent on the event: from its delivery to the function until its result.
    pub duration: Duration,
    /// The function's memory size.
    pub memory_size_mb: u32,
    /// Guest memory actually touched, in MB (rounded up).
    pub max_memory_used_mb: u32,
    /// For the first invocation an environment serves: how long Init took.
    pub init_duration: Option<Duration>,
    /// For an environment started from a snapshot: how long the restore took.
    pub restore_duration: Option<Duration>,
}

impl Report {
    /// The billed time: Duration plus any Init and Restore Duration, rounded up to the
    /// millisecond (Lambda bills Init for every configuration since August 2025).
    pub fn billed_duration_ms(&self) -> u128 {
        let total = self.duration
            + self.init_duration.unwrap_or_default()
            + self.restore_duration.unwrap_or_default();
        total.as_nanos().div_ceil(1_000_000)
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\t\
             Memory Size: {} MB\tMax Memory Used: {} MB",
            self.request_id,
            millis(self.duration),
            self.billed_duration_ms(),
            self.memory_size_mb,
            self.max_memory_used_mb
        )?;
        if let Some(init) = self.init_duration {
            write!(f, "\tInit Duration: {:.2} ms", millis(init))?;
        }
        if let Some(restore) = self.restore_duration {
            write!(f, "\tRestore Duration: {:.2} ms", millis(restore))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            request_id: "id".into(),
            duration: Duration::from_micros(38_660),
            memory_size_mb: 128,
            max_memory_used_mb: 54,
            init_duration: None,
            restore_duration: None,
        }
    }

    #[test]
    fn billed_rounds_up_to_the_millisecond() {
        assert_eq!(report().billed_duration_ms(), 39);
        let exact = Report {
            duration: Duration::from_millis(5),
            ..report()
        };
        assert_eq!(exact.billed_duration_ms(), 5);
        let tiny = Report {
            duration: Duration::from_nanos(1),
            ..report()
        };
        assert_eq!(tiny.billed_duration_ms(), 1);
    }

    #[test]
    fn init_duration_is_printed_and_billed() {
        let with_init = Report {
            init_duration: Some(Duration::from_micros(203_690)),
            ..report()
        };
        assert_eq!(
            with_init.to_string(),
            "REPORT RequestId: id\tDuration: 38.66 ms\tBilled Duration: 243 ms\t\
             Memory Size: 128 MB\tMax Memory Used: 54 MB\tInit Duration: 203.69 ms"
        );
    }
}
