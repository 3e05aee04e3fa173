//! Processes: `fork`, `vfork` and `clone` of a process, the child's own pid, descriptors
//! and signal actions, its end waking the parent, and `wait4`.

use super::{Guest, err};
use crate::kernel::fork::MAX_PROCESSES;
use crate::kernel::{ChildEnd, Step};

const CLONE: u64 = 56;
const FORK: u64 = 57;
const VFORK: u64 = 58;
const WAIT4: u64 = 61;
const KILL: u64 = 62;
const GETPID: u64 = 39;
const GETPPID: u64 = 110;
const PIPE2: u64 = 293;
const READ: u64 = 0;
const WRITE: u64 = 1;
const CLOSE: u64 = 3;
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;

/// Forks and starts the child; its pid.
fn fork(guest: &mut Guest) -> u32 {
    assert_eq!(guest.step(FORK, &[]), Step::Fork);
    let child = guest.kernel.begin_child(&guest.memory).unwrap();
    assert!(!child.shares_memory);
    child.pid
}

#[test]
fn a_child_has_its_own_pid_and_its_end_is_reaped_by_wait4() {
    let mut guest = Guest::one_shot(b"");
    let child = fork(&mut guest);
    assert_eq!(child, 2);
    assert_eq!(guest.call(GETPID, &[]), 2);
    assert_eq!(guest.call(GETPPID, &[]), 1);
    assert_eq!(
        guest.call(KILL, &[1, 0]),
        err(libc::ESRCH),
        "the waiting parent"
    );
    assert_eq!(guest.kernel.end_child(Some(ChildEnd::Exited(3))), Some(2));
    assert_eq!(guest.call(GETPID, &[]), 1);
    assert_eq!(guest.call(GETPPID, &[]), 0);
    assert_eq!(
        guest.call(KILL, &[2, 0]),
        0,
        "an unreaped child takes signals"
    );
    let status = guest.buffer(4);
    assert_eq!(guest.call(WAIT4, &[u64::MAX, status, 0, 0]), 2);
    assert_eq!(guest.get(status, 4), (3i32 << 8).to_le_bytes());
    assert_eq!(
        guest.call(WAIT4, &[u64::MAX, status, 1, 0]),
        err(libc::ECHILD)
    );
    assert_eq!(guest.call(KILL, &[2, 0]), err(libc::ESRCH));
    // Killed by a signal; a wait for a pid that is no child.
    fork(&mut guest);
    guest
        .kernel
        .end_child(Some(ChildEnd::Killed(libc::SIGSEGV)));
    assert_eq!(guest.call(WAIT4, &[99, status, 0, 0]), err(libc::ECHILD));
    assert_eq!(guest.call(WAIT4, &[3, status, 0, 0]), 3);
    assert_eq!(guest.get(status, 4), libc::SIGSEGV.to_le_bytes());
    assert_eq!(
        guest.call(WAIT4, &[u64::MAX, status, 0x100, 0]),
        err(libc::EINVAL),
        "unknown options"
    );
}

#[test]
fn a_childs_descriptors_are_its_own_and_the_pipes_it_shares_stay_open() {
    let mut guest = Guest::one_shot(b"");
    let fds = guest.buffer(8);
    assert_eq!(guest.call(PIPE2, &[fds, 0]), 0);
    let ends = guest.get(fds, 8);
    let read_end = u64::from(u32::from_le_bytes(ends[..4].try_into().unwrap()));
    let write_end = u64::from(u32::from_le_bytes(ends[4..].try_into().unwrap()));
    fork(&mut guest);
    // The child writes, then closes both ends and ends.
    let byte = guest.put(b"x");
    assert_eq!(guest.call(WRITE, &[write_end, byte, 1]), 1);
    assert_eq!(guest.call(CLOSE, &[write_end]), 0);
    assert_eq!(guest.call(CLOSE, &[read_end]), 0);
    guest.kernel.end_child(Some(ChildEnd::Exited(0)));
    // The parent's ends are open: it reads what the child wrote, and once it closes its
    // own write end, the end of the pipe.
    let out = guest.buffer(4);
    assert_eq!(guest.call(READ, &[read_end, out, 4]), 1);
    assert_eq!(guest.get(out, 1), b"x");
    assert_eq!(guest.call(CLOSE, &[write_end]), 0);
    assert_eq!(guest.call(READ, &[read_end, out, 4]), 0);
}

#[test]
fn ignoring_sigchld_reaps_children_at_once() {
    let mut guest = Guest::one_shot(b"");
    guest.ignore_signal(libc::SIGCHLD as u64);
    fork(&mut guest);
    guest.kernel.end_child(Some(ChildEnd::Exited(0)));
    assert_eq!(guest.call(WAIT4, &[u64::MAX, 0, 0, 0]), err(libc::ECHILD));
}

#[test]
fn processes_nest_up_to_the_limit_and_clone_flags_are_checked() {
    let mut guest = Guest::one_shot(b"");
    for _ in 1..MAX_PROCESSES {
        fork(&mut guest);
    }
    assert_eq!(guest.call(FORK, &[]), err(libc::EAGAIN));
    for _ in 1..MAX_PROCESSES {
        assert!(guest.kernel.end_child(Some(ChildEnd::Exited(0))).is_some());
    }
    assert_eq!(
        guest.kernel.end_child(None),
        None,
        "the first process is no child"
    );
    // A process sharing memory with a parent that runs beside it is refused; vfork is
    // CLONE_VM | CLONE_VFORK.
    assert_eq!(
        guest.call(CLONE, &[CLONE_VM | libc::SIGCHLD as u64, 0, 0, 0, 0]),
        err(libc::EINVAL)
    );
    assert_eq!(guest.step(VFORK, &[]), Step::Fork);
    let child = guest.kernel.begin_child(&guest.memory).unwrap();
    assert!(child.shares_memory);
    assert_eq!(
        guest.step(CLONE, &[CLONE_VM | CLONE_VFORK | 17, 0, 0, 0, 0]),
        Step::Fork
    );
    guest.kernel.drop_fork();
    // A child the run loop could not start leaves no trace: only the first of the nested
    // children is there to reap.
    assert!(guest.kernel.end_child(None).is_some());
    assert_eq!(guest.call(WAIT4, &[u64::MAX, 0, 0, 0]), 2);
    assert_eq!(guest.call(WAIT4, &[u64::MAX, 0, 0, 0]), err(libc::ECHILD));
}

#[test]
fn waitid_reports_a_child_in_a_siginfo_and_wnowait_keeps_it() {
    const WAITID: u64 = 247;
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    const WEXITED: u64 = 4;
    const WNOWAIT: u64 = 0x0100_0000;
    let mut guest = Guest::one_shot(b"");
    let child = fork(&mut guest);
    guest.kernel.end_child(Some(ChildEnd::Exited(9)));
    let info = guest.buffer(128);
    let int =
        |guest: &Guest, at: u64| i32::from_le_bytes(guest.get(info + at, 4).try_into().unwrap());
    assert_eq!(
        guest.call(
            WAITID,
            &[P_PID, u64::from(child), info, WEXITED | WNOWAIT, 0]
        ),
        0
    );
    assert_eq!(
        (
            int(&guest, 0),
            int(&guest, 8),
            int(&guest, 16),
            int(&guest, 24)
        ),
        (libc::SIGCHLD, 1, child as i32, 9),
        "SIGCHLD, CLD_EXITED, the pid, the status"
    );
    assert_eq!(
        guest.call(WAITID, &[P_ALL, 0, info, WEXITED, 0]),
        0,
        "still there"
    );
    assert_eq!(
        guest.call(WAITID, &[P_ALL, 0, info, WEXITED, 0]),
        err(libc::ECHILD)
    );
    assert_eq!(
        guest.call(WAITID, &[P_ALL, 0, info, 0, 0]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(WAITID, &[3, 0, info, WEXITED, 0]),
        err(libc::EINVAL)
    );
    // Killed by a signal: CLD_KILLED and the signal.
    let child = fork(&mut guest);
    guest
        .kernel
        .end_child(Some(ChildEnd::Killed(libc::SIGKILL)));
    assert_eq!(
        guest.call(WAITID, &[P_PID, u64::from(child), info, WEXITED, 0]),
        0
    );
    assert_eq!((int(&guest, 8), int(&guest, 24)), (2, libc::SIGKILL));
}
