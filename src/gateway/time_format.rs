//! Lambda's timestamps, from the system clock (no time zone other than UTC is ever shown),
//! with the date from `lambda_core::calendar`.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC date and time, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

fn civil(time: SystemTime) -> Civil {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = lambda_core::calendar::civil_date(secs / 86_400);
    let of_day = secs % 86_400;
    Civil {
        year,
        month,
        day,
        hour: of_day / 3_600,
        minute: of_day % 3_600 / 60,
        second: of_day % 60,
        millis: since.subsec_millis(),
    }
}

/// `LastModified` as Lambda writes it: `2026-12-05T08:30:00.000+0000`.
pub(super) fn iso8601(time: SystemTime) -> String {
    let c = civil(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// A Function URL event's `requestContext.time`: `05/Dec/2026:08:30:00 +0000`.
pub(super) fn common_log(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(time);
    let month = MONTHS[(c.month.saturating_sub(1) % 12) as usize];
    format!(
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

/// SigV4's `X-Amz-Date` form: `20261205T083000Z`.
pub(super) fn compact(time: SystemTime) -> String {
    let c = civil(time);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Milliseconds since the epoch.
pub(super) fn epoch_millis(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_secs() * 1_000 + u64::from(since.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_lambdas() {
        // 2026-12-05T08:30:07.250Z
        let t = UNIX_EPOCH + Duration::from_millis(1_796_459_407_250);
        assert_eq!(iso8601(t), "2026-12-05T08:30:07.250+0000");
        assert_eq!(common_log(t), "05/Dec/2026:08:30:07 +0000");
        assert_eq!(epoch_millis(t), 1_796_459_407_250);
        // A leap day and the epoch.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000+0000");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000+0000");
    }
}
