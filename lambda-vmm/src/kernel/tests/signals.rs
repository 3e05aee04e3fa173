//! Signals: actions, masks, the alternate stack, sending to threads, what the run loop is
//! told to deliver, waits for signals.

use super::{Guest, err};
use crate::kernel::{Disposition, ProcessEnd, SigInfo, Step};

const RT_SIGACTION: u64 = 13;
const RT_SIGPROCMASK: u64 = 14;
const RT_SIGRETURN: u64 = 15;
const KILL: u64 = 62;
const RT_SIGPENDING: u64 = 127;
const RT_SIGTIMEDWAIT: u64 = 128;
const RT_SIGSUSPEND: u64 = 130;
const SIGALTSTACK: u64 = 131;
const TGKILL: u64 = 234;
const SA_SIGINFO: u64 = 4;
const SA_RESTORER: u64 = 0x0400_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SIGUSR1: u64 = 10;
const SIGUSR2: u64 = 12;

/// Installs a handler at 0x1234 for `signal`; returns the old action's bytes.
fn handle(guest: &mut Guest, signal: u64, flags: u64) -> Vec<u8> {
    let action = guest.put(
        &[0x1234u64, flags | SA_SIGINFO | SA_RESTORER, 0x5678, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    let old = guest.buffer(32);
    assert_eq!(guest.call(RT_SIGACTION, &[signal, action, old, 8]), 0);
    guest.get(old, 32)
}

fn bit(signal: u64) -> u64 {
    1 << (signal - 1)
}

#[test]
fn actions_are_kept_and_sigkill_cannot_be_caught() {
    let mut guest = Guest::one_shot(b"");
    assert_eq!(
        handle(&mut guest, SIGUSR1, 0),
        vec![0; 32],
        "the default at first"
    );
    let old = handle(&mut guest, SIGUSR1, 0);
    assert_eq!(&old[..8], &0x1234u64.to_le_bytes());
    let action = guest.put(&[0; 32]);
    assert_eq!(
        guest.call(RT_SIGACTION, &[9, action, 0, 8]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(RT_SIGACTION, &[19, action, 0, 8]),
        err(libc::EINVAL)
    );
    assert_eq!(guest.call(RT_SIGACTION, &[65, 0, 0, 8]), err(libc::EINVAL));
    assert_eq!(
        guest.call(RT_SIGACTION, &[SIGUSR1, 0, 0, 16]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(RT_SIGACTION, &[SIGUSR1, 0x10, 0, 8]),
        err(libc::EFAULT)
    );
}

#[test]
fn a_handled_signal_is_delivered_with_the_handlers_mask() {
    let mut guest = Guest::one_shot(b"");
    handle(&mut guest, SIGUSR1, SA_RESETHAND);
    assert_eq!(guest.call(TGKILL, &[1, 1, SIGUSR1]), 0);
    assert!(guest.kernel.signal_pending(1));
    let Some(Disposition::Deliver(delivery)) = guest.kernel.take_signal(1) else {
        panic!("a handler to run");
    };
    assert_eq!(delivery.info.signo, 10);
    assert_eq!(delivery.info.code, -6, "SI_TKILL");
    assert_eq!(
        (delivery.action.handler, delivery.action.restorer),
        (0x1234, 0x5678)
    );
    assert_eq!(delivery.old_mask, 0);
    assert!(!delivery.altstack.enabled());
    // Inside the handler the signal is blocked; SA_RESETHAND put the default back.
    let mask = guest.buffer(8);
    assert_eq!(guest.call(RT_SIGPROCMASK, &[0, 0, mask, 8]), 0);
    assert_eq!(guest.get(mask, 8), bit(SIGUSR1).to_le_bytes());
    assert_eq!(guest.step(RT_SIGRETURN, &[]), Step::SigReturn);
    guest.kernel.return_from_handler(1, 0, delivery.altstack);
    assert_eq!(
        guest.step(KILL, &[1, SIGUSR1]),
        Step::Stop(ProcessEnd::Signaled(10)),
        "the default action now"
    );
}

#[test]
fn blocked_signals_wait_and_ignored_ones_vanish() {
    let mut guest = Guest::one_shot(b"");
    handle(&mut guest, SIGUSR1, 0);
    let set = guest.put(&bit(SIGUSR1).to_le_bytes());
    assert_eq!(guest.call(RT_SIGPROCMASK, &[0, set, 0, 8]), 0, "SIG_BLOCK");
    assert_eq!(guest.call(KILL, &[1, SIGUSR1]), 0);
    assert!(!guest.kernel.signal_pending(1), "blocked");
    let pending = guest.buffer(8);
    assert_eq!(guest.call(RT_SIGPENDING, &[pending, 8]), 0);
    assert_eq!(guest.get(pending, 8), bit(SIGUSR1).to_le_bytes());
    assert_eq!(
        guest.call(RT_SIGPROCMASK, &[1, set, 0, 8]),
        0,
        "SIG_UNBLOCK"
    );
    assert!(guest.kernel.signal_pending(1));
    // SIGKILL and SIGSTOP cannot be blocked; a bad `how` is refused.
    let all = guest.put(&u64::MAX.to_le_bytes());
    assert_eq!(guest.call(RT_SIGPROCMASK, &[2, all, 0, 8]), 0);
    let mask = guest.buffer(8);
    guest.call(RT_SIGPROCMASK, &[0, 0, mask, 8]);
    assert_eq!(guest.get(mask, 8), (!(bit(9) | bit(19))).to_le_bytes());
    assert_eq!(
        guest.call(RT_SIGPROCMASK, &[7, set, 0, 8]),
        err(libc::EINVAL)
    );
    // An ignored signal is dropped, even a fatal one; SIGURG is ignored by default.
    guest.ignore_signal(15);
    assert_eq!(guest.call(KILL, &[1, 15]), 0);
    assert_eq!(guest.call(KILL, &[1, 23]), 0);
    assert_eq!(
        guest.step(KILL, &[1, 9]),
        Step::Stop(ProcessEnd::Signaled(9)),
        "SIGKILL ends it even blocked-all"
    );
}

#[test]
fn signals_go_to_the_thread_named_or_one_that_does_not_block_them() {
    let mut guest = Guest::one_shot(b"");
    handle(&mut guest, SIGUSR2, 0);
    guest.call(56, &[0x10f00, 0, 0, 0, 0]);
    assert_eq!(guest.call(TGKILL, &[1, 2, SIGUSR2]), 0);
    assert!(guest.kernel.signal_pending(2) && !guest.kernel.signal_pending(1));
    assert_eq!(guest.call(TGKILL, &[1, 3, SIGUSR2]), err(libc::ESRCH));
    assert_eq!(
        guest.call(TGKILL, &[2, 1, SIGUSR2]),
        err(libc::ESRCH),
        "another process"
    );
    // kill() to the process skips a thread that blocks the signal.
    let set = guest.put(&bit(SIGUSR1).to_le_bytes());
    handle(&mut guest, SIGUSR1, 0);
    guest.call(RT_SIGPROCMASK, &[0, set, 0, 8]);
    assert_eq!(guest.call(KILL, &[1, SIGUSR1]), 0);
    assert_eq!(
        guest.kernel.next_signal(2),
        Some(10),
        "thread 2 takes SIGUSR1 first"
    );
    // Standard signals are pending once; the handler gets the restart rule.
    assert_eq!(guest.call(TGKILL, &[1, 2, SIGUSR2]), 0);
    assert!(matches!(
        guest.kernel.take_signal(2),
        Some(Disposition::Deliver(_))
    ));
    assert!(matches!(
        guest.kernel.take_signal(2),
        Some(Disposition::Deliver(_))
    ));
    assert_eq!(
        guest.kernel.take_signal(2),
        None,
        "SIGUSR2 was pending once"
    );
    assert!(!guest.kernel.restarts(12, 0), "no SA_RESTART");
}

#[test]
fn a_fault_goes_to_a_handler_unless_blocked() {
    let mut guest = Guest::one_shot(b"");
    let fault = SigInfo::fault(11, 1, 0);
    assert_eq!(
        guest.kernel.fault(1, fault),
        Disposition::Terminate(11),
        "no handler"
    );
    handle(&mut guest, 11, 0);
    let Disposition::Deliver(delivery) = guest.kernel.fault(1, fault) else {
        panic!("the handler runs");
    };
    assert_eq!(delivery.info, fault);
    // Now SIGSEGV is blocked (inside the handler): a second fault ends the program.
    assert_eq!(guest.kernel.fault(1, fault), Disposition::Terminate(11));
}

#[test]
fn the_alternate_stack_is_per_thread_and_checked() {
    let mut guest = Guest::one_shot(b"");
    let old = guest.buffer(24);
    assert_eq!(guest.call(SIGALTSTACK, &[0, old]), 0);
    assert_eq!(
        &guest.get(old + 8, 4),
        &2i32.to_le_bytes(),
        "SS_DISABLE at first"
    );
    let stack = stack_t;
    let small = guest.put(&stack(0x7000_0000, 0, 1024));
    assert_eq!(guest.call(SIGALTSTACK, &[small, 0]), err(libc::ENOMEM));
    let bad = guest.put(&stack(0x7000_0000, 7, 65536));
    assert_eq!(guest.call(SIGALTSTACK, &[bad, 0]), err(libc::EINVAL));
    let good = guest.put(&stack(0x7000_0000, 0, 65536));
    assert_eq!(guest.call(SIGALTSTACK, &[good, 0]), 0);
    // On it, it reads SS_ONSTACK and cannot change.
    guest.stack_pointer = 0x7000_8000;
    assert_eq!(guest.call(SIGALTSTACK, &[0, old]), 0);
    assert_eq!(&guest.get(old + 8, 4), &1i32.to_le_bytes(), "SS_ONSTACK");
    assert_eq!(guest.call(SIGALTSTACK, &[good, 0]), err(libc::EPERM));
    // A new thread has none.
    guest.call(56, &[0x10f00, 0, 0, 0, 0]);
    assert_eq!(guest.as_thread(2).call(SIGALTSTACK, &[0, old]), 0);
    assert_eq!(&guest.get(old + 8, 4), &2i32.to_le_bytes());
}

#[test]
fn sigtimedwait_takes_a_blocked_signal_and_sigsuspend_waits_with_its_mask() {
    let mut guest = Guest::one_shot(b"");
    handle(&mut guest, SIGUSR1, 0);
    let set = guest.put(&bit(SIGUSR1).to_le_bytes());
    guest.call(RT_SIGPROCMASK, &[0, set, 0, 8]);
    let info = guest.buffer(128);
    let zero = guest.put(&[0; 16]);
    assert_eq!(
        guest.call(RT_SIGTIMEDWAIT, &[set, info, zero, 8]),
        err(libc::EAGAIN)
    );
    guest.call(KILL, &[1, SIGUSR1]);
    assert_eq!(guest.call(RT_SIGTIMEDWAIT, &[set, info, zero, 8]), 10);
    assert_eq!(&guest.get(info, 4), &10i32.to_le_bytes());
    assert!(!guest.kernel.signal_pending(1));
    // sigsuspend with an empty mask waits; the handler's frame gets the mask from before.
    let empty = guest.put(&0u64.to_le_bytes());
    assert_eq!(guest.step(RT_SIGSUSPEND, &[empty, 8]), Step::Block(None));
    guest.call(KILL, &[1, SIGUSR1]);
    assert!(
        guest.kernel.signal_pending(1),
        "unblocked by sigsuspend's mask"
    );
    guest.kernel.interrupt_wait();
    let Some(Disposition::Deliver(delivery)) = guest.kernel.take_signal(1) else {
        panic!("a handler to run");
    };
    assert_eq!(
        delivery.old_mask,
        bit(SIGUSR1),
        "the mask before sigsuspend"
    );
}

#[test]
fn a_write_to_a_broken_pipe_raises_sigpipe_unless_a_send_asks_not_to() {
    const PIPE2: u64 = 293;
    const WRITE: u64 = 1;
    const CLOSE: u64 = 3;
    const SOCKETPAIR: u64 = 53;
    const SENDTO: u64 = 44;
    const MSG_NOSIGNAL: u64 = 0x4000;
    const SIGPIPE: u64 = 13;
    let mut guest = Guest::one_shot(b"");
    handle(&mut guest, SIGPIPE, 0);
    let ends = guest.buffer(8);
    assert_eq!(guest.call(PIPE2, &[ends, 0]), 0);
    let ends = guest.get(ends, 8);
    let (read, write) = (
        u64::from(u32::from_le_bytes(ends[..4].try_into().unwrap())),
        u64::from(u32::from_le_bytes(ends[4..].try_into().unwrap())),
    );
    assert_eq!(guest.call(CLOSE, &[read]), 0);
    let byte = guest.put(b"x");
    assert_eq!(guest.call(WRITE, &[write, byte, 1]), err(libc::EPIPE));
    assert_eq!(guest.kernel.next_signal(1), Some(SIGPIPE as i32));
    assert!(matches!(
        guest.kernel.take_signal(1),
        Some(Disposition::Deliver(_))
    ));
    // A send with MSG_NOSIGNAL to a closed peer: EPIPE alone.
    let pair = guest.buffer(8);
    assert_eq!(guest.call(SOCKETPAIR, &[1, 1, 0, pair]), 0);
    let pair = guest.get(pair, 8);
    let (one, other) = (
        u64::from(u32::from_le_bytes(pair[..4].try_into().unwrap())),
        u64::from(u32::from_le_bytes(pair[4..].try_into().unwrap())),
    );
    assert_eq!(guest.call(CLOSE, &[other]), 0);
    // The handler's mask blocks SIGPIPE now: look at what is pending, blocked or not.
    let pending = guest.buffer(8);
    assert_eq!(
        guest.call(SENDTO, &[one, byte, 1, MSG_NOSIGNAL, 0, 0]),
        err(libc::EPIPE)
    );
    assert_eq!(guest.call(RT_SIGPENDING, &[pending, 8]), 0);
    assert_eq!(guest.get(pending, 8), 0u64.to_le_bytes());
    assert_eq!(
        guest.call(SENDTO, &[one, byte, 1, 0, 0, 0]),
        err(libc::EPIPE)
    );
    assert_eq!(guest.call(RT_SIGPENDING, &[pending, 8]), 0);
    assert_eq!(guest.get(pending, 8), bit(SIGPIPE).to_le_bytes());
}

/// `stack_t` as a program writes it.
fn stack_t(sp: u64, flags: i32, size: u64) -> Vec<u8> {
    let mut bytes = sp.to_le_bytes().to_vec();
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes
}

/// The flags word `sigaltstack` reports of the calling thread's alternate stack.
fn altstack_flags(guest: &mut Guest) -> i32 {
    let old = guest.buffer(24);
    assert_eq!(guest.call(SIGALTSTACK, &[0, old]), 0);
    i32::from_le_bytes(guest.get(old + 8, 4).try_into().unwrap())
}

#[test]
fn rt_sigreturn_takes_the_frames_alternate_stack_as_sigaltstack_would() {
    use crate::kernel::AltStack;
    use crate::kernel::signals::{SS_DISABLE, SS_ONSTACK};
    const SS_AUTODISARM: i32 = 1 << 31;
    let mut guest = Guest::one_shot(b"");
    let set = |guest: &mut Guest, sp: u64, flags: i32, size: u64| {
        guest
            .kernel
            .return_from_handler(1, 0, AltStack { sp, flags, size });
    };
    // `SS_ONSTACK` is a mode the call accepts and does not keep, as Linux.
    set(&mut guest, 0x7000_0000, SS_ONSTACK | SS_AUTODISARM, 65536);
    assert_eq!(altstack_flags(&mut guest), SS_AUTODISARM);
    // An invalid mode or a stack too small leaves the stack as it was.
    set(&mut guest, 0x6000_0000, 0x10, 65536);
    set(&mut guest, 0x6000_0000, 0, 1024);
    let old = guest.buffer(24);
    assert_eq!(guest.call(SIGALTSTACK, &[0, old]), 0);
    assert_eq!(
        guest.get(old, 24),
        stack_t(0x7000_0000, SS_AUTODISARM, 65536)
    );
    // A disabled one is disabled whatever else the frame says of it.
    set(&mut guest, 0x6000_0000, SS_DISABLE | SS_AUTODISARM, 65536);
    assert_eq!(guest.call(SIGALTSTACK, &[0, old]), 0);
    assert_eq!(guest.get(old, 24), stack_t(0, SS_DISABLE, 0));
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
}

/// What a snapshot file's load says of `guest`'s kernel with its thread table and signal
/// actions changed by `forge` in their serialized form.
fn forged_signals(
    guest: &Guest,
    forge: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> Result<(), String> {
    let mut threads = serde_json::to_value(&guest.kernel.threads).unwrap();
    let mut actions = serde_json::to_value(&guest.kernel.actions).unwrap();
    forge(&mut threads, &mut actions);
    let mut forged = super::copy_of(guest);
    forged.kernel.threads = serde_json::from_value(threads).unwrap();
    forged.kernel.actions = serde_json::from_value(actions).unwrap();
    super::snapshot_check(&forged, lambda_core::Contract::Stdio)
}

#[test]
fn signal_state_a_snapshot_could_not_hold_is_refused() {
    const SIGRT: u64 = 40;
    let mut guest = Guest::one_shot(b"");
    handle(&mut guest, SIGUSR1, 0);
    let all = guest.put(&u64::MAX.to_le_bytes());
    assert_eq!(guest.call(RT_SIGPROCMASK, &[2, all, 0, 8]), 0);
    // A standard signal is pending once however often it is sent; a real-time one queues
    // up to the bound.
    assert_eq!(guest.call(TGKILL, &[1, 1, SIGUSR1]), 0);
    assert_eq!(guest.call(TGKILL, &[1, 1, SIGUSR1]), 0);
    let mut queued = 1;
    while guest.call(TGKILL, &[1, 1, SIGRT]) == 0 {
        queued += 1;
    }
    assert_eq!(queued, 64, "the kernel's own bound");
    let stack = guest.put(&stack_t(0x7000_0000, 1 << 31, 65536));
    assert_eq!(guest.call(SIGALTSTACK, &[stack, 0]), 0);
    forged_signals(&guest, |_, _| {}).unwrap();

    let refused = |forge: &dyn Fn(&mut serde_json::Value, &mut serde_json::Value),
                   because: &str| {
        let why = forged_signals(&guest, forge).expect_err(because);
        assert!(why.contains(because), "{why}");
    };
    fn signals(threads: &mut serde_json::Value) -> &mut serde_json::Value {
        &mut threads["threads"]["1"]["signals"]
    }
    refused(
        &|t, _| signals(t)["mask"] = u64::MAX.into(),
        "signals: thread 1: its mask blocks SIGKILL or SIGSTOP",
    );
    refused(
        &|t, _| signals(t)["saved_mask"] = bit(19).into(),
        "its saved mask blocks SIGKILL or SIGSTOP",
    );
    refused(
        &|t, _| {
            let more = signals(t)["pending"][1].clone();
            signals(t)["pending"].as_array_mut().unwrap().push(more);
        },
        "it has 65 signals pending, more than 64",
    );
    refused(
        &|t, _| {
            let first = signals(t)["pending"][0].clone();
            signals(t)["pending"][1] = first;
        },
        "standard signal 10 is pending twice",
    );
    for signo in [0, 65, -1] {
        refused(
            &|t, _| signals(t)["pending"][1]["signo"] = signo.into(),
            &format!("a pending signal is numbered {signo}"),
        );
    }
    for (flags, size) in [(1, 65536), (0, 1024), (2, 65536)] {
        refused(
            &|t, _| {
                signals(t)["altstack"]["flags"] = flags.into();
                signals(t)["altstack"]["size"] = size.into();
            },
            "is not one sigaltstack sets",
        );
    }
    refused(
        &|_, a| a["actions"][8]["handler"] = 0x1234.into(),
        "signals: signal 9's action is not the default",
    );
    refused(
        &|_, a| a["actions"][18]["flags"] = 4.into(),
        "signal 19's action is not the default",
    );
    refused(
        &|_, a| a["actions"][9]["mask"] = bit(9).into(),
        "signal 10's handler blocks SIGKILL or SIGSTOP",
    );
}
