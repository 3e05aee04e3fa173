//! The scheduler calls: one CPU, the unprivileged policies and nice values, membarrier.

use super::{Guest, err};

#[test]
fn affinity_is_the_one_cpu() {
    let mut guest = Guest::one_shot(b"");
    let mask = guest.buffer(128);
    assert_eq!(guest.call(204, &[0, 128, mask]), 8);
    assert_eq!(guest.get(mask, 8), 1u64.to_le_bytes());
    assert_eq!(guest.call(204, &[0, 4, mask]), err(libc::EINVAL));
    assert_eq!(guest.call(204, &[77, 8, mask]), err(libc::ESRCH));
    assert_eq!(guest.call(203, &[0, 8, mask]), 0, "pinning to CPU 0");
    let other_cpu = guest.put(&2u64.to_le_bytes());
    assert_eq!(guest.call(203, &[0, 8, other_cpu]), err(libc::EINVAL));
    assert_eq!(guest.call(203, &[1, 8, 0x10]), err(libc::EFAULT));
}

#[test]
fn policies_and_priorities_are_an_unprivileged_users() {
    let mut guest = Guest::one_shot(b"");
    let zero = guest.put(&0i32.to_le_bytes());
    let ten = guest.put(&10i32.to_le_bytes());
    assert_eq!(guest.call(145, &[0]), 0, "SCHED_OTHER");
    assert_eq!(guest.call(144, &[0, 3, zero]), 0, "SCHED_BATCH");
    assert_eq!(guest.call(145, &[1]), 3);
    assert_eq!(
        guest.call(144, &[0, 1, ten]),
        err(libc::EPERM),
        "SCHED_FIFO"
    );
    assert_eq!(guest.call(144, &[0, 0, ten]), err(libc::EINVAL));
    assert_eq!(guest.call(144, &[0, 9, zero]), err(libc::EINVAL));
    let param = guest.buffer(4);
    assert_eq!(guest.call(143, &[0, param]), 0);
    assert_eq!(guest.call(142, &[0, ten]), err(libc::EINVAL));
    assert_eq!(guest.call(146, &[1]), 99);
    assert_eq!(guest.call(147, &[0]), 0);
    assert_eq!(guest.call(146, &[42]), err(libc::EINVAL));
    // nice: up is allowed, down is not.
    assert_eq!(guest.call(140, &[0, 0]), 20);
    assert_eq!(guest.call(141, &[0, 0, 5]), 0);
    assert_eq!(guest.call(140, &[0, 0]), 15);
    assert_eq!(guest.call(141, &[0, 0, 0]), err(libc::EACCES));
    assert_eq!(guest.call(141, &[0, 0, 100]), 0, "clamped to 19");
    assert_eq!(guest.call(140, &[0, 0]), 1);
    assert_eq!(guest.call(140, &[7, 0]), err(libc::EINVAL));
    assert_eq!(guest.call(140, &[0, 99]), err(libc::ESRCH));
}

#[test]
fn membarrier_answers_what_it_supports() {
    let mut guest = Guest::one_shot(b"");
    assert_eq!(guest.call(324, &[0, 0]), 1 | 8 | 16, "QUERY");
    assert_eq!(guest.call(324, &[1, 0]), 0, "GLOBAL");
    assert_eq!(guest.call(324, &[8, 0]), err(libc::EPERM), "not registered");
    assert_eq!(guest.call(324, &[16, 0]), 0);
    assert_eq!(guest.call(324, &[8, 0]), 0);
    assert_eq!(guest.call(324, &[0, 1]), err(libc::EINVAL));
    assert_eq!(guest.call(324, &[64, 0]), err(libc::EINVAL));
}
