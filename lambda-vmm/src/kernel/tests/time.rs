//! Clocks and sleeps: huge, negative and malformed times.

use super::{Guest, err};
use crate::kernel::Step;

// Step holds an Instant, so a sleep's exact wake-up cannot be compared; its shape can.

#[test]
fn a_sleep_of_int64_max_seconds_waits_forever_instead_of_panicking() {
    let mut guest = Guest::one_shot(b"");
    let forever = guest.put(&[i64::MAX.to_le_bytes(), 999_999_999i64.to_le_bytes()].concat());
    // A wake-up centuries away (or none, where the host's clock cannot name the time).
    let waits = |step| matches!(step, Step::Block(_));
    assert!(waits(guest.step(35, &[forever, 0])), "nanosleep");
    // clock_nanosleep, relative and absolute, on both clocks.
    for clock in [0, 1] {
        assert!(waits(guest.step(230, &[clock, 0, forever, 0])));
        assert!(waits(guest.step(230, &[clock, 1, forever, 0])));
    }
    // ppoll and epoll_wait with the same timeout.
    let mut guest = Guest::one_shot(b"");
    let forever = guest.put(&[i64::MAX.to_le_bytes(), 999_999_999i64.to_le_bytes()].concat());
    assert!(waits(guest.step(271, &[0, 0, forever, 0, 8])));
}

#[test]
fn malformed_times_are_einval_and_short_ones_end() {
    let mut guest = Guest::one_shot(b"");
    let negative = guest.put(&[(-1i64).to_le_bytes(), 0i64.to_le_bytes()].concat());
    let bad_nanos = guest.put(&[0i64.to_le_bytes(), 1_000_000_000i64.to_le_bytes()].concat());
    assert_eq!(guest.call(35, &[negative, 0]), err(libc::EINVAL));
    assert_eq!(guest.call(35, &[bad_nanos, 0]), err(libc::EINVAL));
    assert_eq!(guest.call(35, &[0x10, 0]), err(libc::EFAULT));
    assert_eq!(guest.call(35, &[u64::MAX - 4, 0]), err(libc::EFAULT));
    let zero = guest.put(&[0u8; 16]);
    assert_eq!(
        guest.call(35, &[zero, 0]),
        0,
        "a zero sleep returns at once"
    );
    let buf = guest.buffer(16);
    assert_eq!(guest.call(229, &[1, buf]), 0, "clock_getres");
    assert_eq!(guest.call(229, &[99, buf]), err(libc::EINVAL));
    assert_eq!(guest.call(228, &[99, buf]), err(libc::EINVAL));
}

#[test]
fn futex_waits_end_only_by_their_timeout() {
    let mut guest = Guest::one_shot(b"");
    let word = guest.put(&7u32.to_le_bytes());
    assert_eq!(
        guest.call(202, &[word, 0, 8, 0]),
        err(libc::EAGAIN),
        "value changed"
    );
    assert_eq!(
        guest.call(202, &[word + 1, 0, 7, 0]),
        err(libc::EINVAL),
        "misaligned"
    );
    assert_eq!(
        guest.step(202, &[word, 0, 7, 0]),
        Step::Block(None),
        "no timeout"
    );
    let mut guest = Guest::one_shot(b"");
    let word = guest.put(&7u32.to_le_bytes());
    let forever = guest.put(&[i64::MAX.to_le_bytes(), 0i64.to_le_bytes()].concat());
    assert_eq!(guest.step(202, &[word, 0, 7, forever]), Step::Block(None));
    let mut guest = Guest::one_shot(b"");
    let word = guest.put(&7u32.to_le_bytes());
    let zero = guest.put(&[0u8; 16]);
    assert_eq!(guest.call(202, &[word, 0, 7, zero]), err(libc::ETIMEDOUT));
    assert_eq!(
        guest.call(202, &[word, 0, 7 | (1 << 32), u64::MAX - 4]),
        err(libc::EFAULT)
    );
    assert_eq!(guest.call(202, &[word, 1, 1, 0]), 0, "a wake finds nobody");
}
