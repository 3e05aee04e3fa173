//! The dispatcher: unknown numbers, the refused ones, and the tally.

use super::{Guest, err};
use crate::kernel::{MAX_UNSUPPORTED_KINDS, OTHER_UNSUPPORTED};

#[test]
fn unknown_numbers_answer_enosys_and_are_counted_within_a_bound() {
    let mut guest = Guest::one_shot(b"");
    for number in 1000..1000 + MAX_UNSUPPORTED_KINDS as u64 + 10 {
        assert_eq!(guest.call(number, &[]), err(libc::ENOSYS));
    }
    assert_eq!(guest.call(u64::MAX, &[1, 2, 3]), err(libc::ENOSYS));
    let tally = &guest.kernel.stats().unsupported;
    assert_eq!(tally.len(), MAX_UNSUPPORTED_KINDS + 1);
    assert_eq!(tally[&OTHER_UNSUPPORTED], 11);
    assert_eq!(
        guest.kernel.stats().syscalls,
        MAX_UNSUPPORTED_KINDS as u64 + 11
    );
}

#[test]
fn refused_syscalls_answer_their_errno_without_being_counted_as_unknown() {
    let mut guest = Guest::one_shot(b"");
    assert_eq!(guest.call(334, &[0, 0, 0, 0]), err(libc::ENOSYS)); // rseq
    assert_eq!(guest.call(49, &[3, 0, 0]), err(libc::EOPNOTSUPP)); // bind
    assert_eq!(guest.call(43, &[3, 0, 0]), err(libc::EOPNOTSUPP)); // accept
    assert!(guest.kernel.stats().unsupported.is_empty());
}
