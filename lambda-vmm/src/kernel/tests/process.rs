//! The process: signals to itself, randomness, the FS base, limits.

use super::{Guest, err};
use crate::kernel::{ProcessEnd, Step};

#[test]
fn a_fatal_signal_to_itself_ends_the_program() {
    let mut guest = Guest::one_shot(b"");
    assert_eq!(guest.call(62, &[1, 0]), 0, "signal 0 checks only");
    assert_eq!(guest.call(62, &[1, 17]), 0, "SIGCHLD is ignored");
    assert_eq!(guest.call(62, &[2, 9]), err(libc::ESRCH));
    assert_eq!(guest.call(62, &[1, 65]), err(libc::EINVAL));
    assert_eq!(guest.call(62, &[1, u64::MAX]), err(libc::EINVAL));
    assert_eq!(
        guest.step(62, &[u64::MAX, 6]),
        Step::Stop(ProcessEnd::Signaled(6)),
        "kill(-1, SIGABRT)"
    );
    let mut guest = Guest::one_shot(b"");
    assert_eq!(
        guest.step(231, &[0x1_0000_0103]),
        Step::Stop(ProcessEnd::Exited(3))
    );
}

#[test]
fn getrandom_checks_flags_and_fills_large_requests() {
    let mut guest = Guest::one_shot(b"");
    let buf = guest.buffer(300_000);
    assert_eq!(guest.call(318, &[buf, 300_000, 0]), 300_000);
    assert!(guest.get(buf + 200_000, 64).iter().any(|&b| b != 0));
    assert_eq!(
        guest.call(318, &[buf, 16, 1 | 2]),
        16,
        "GRND_NONBLOCK | GRND_RANDOM"
    );
    assert_eq!(guest.call(318, &[buf, 16, 8]), err(libc::EINVAL));
    assert_eq!(guest.call(318, &[buf, 16, 2 | 4]), err(libc::EINVAL));
    assert_eq!(guest.call(318, &[0x10, 16, 0]), err(libc::EFAULT));
    let big = guest.call(
        9,
        &[
            0,
            32 << 20,
            3,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    ) as u64;
    assert_eq!(
        guest.call(318, &[big, u64::MAX, 0]),
        33_554_431,
        "capped as Linux caps it"
    );
    assert_eq!(
        guest.call(318, &[buf, u64::MAX, 0]),
        err(libc::EFAULT),
        "past the mapping"
    );
}

#[test]
fn the_fs_base_is_an_effect_for_the_run_loop() {
    let mut guest = Guest::one_shot(b"");
    assert_eq!(
        guest.step(158, &[0x1002, 0x7000_0000]),
        Step::SetFsBase(0x7000_0000)
    );
    assert_eq!(guest.call(158, &[0x1002, 1 << 47]), err(libc::EPERM));
    assert_eq!(
        guest.call(158, &[0x1001, 0]),
        err(libc::EINVAL),
        "ARCH_SET_GS"
    );
}
