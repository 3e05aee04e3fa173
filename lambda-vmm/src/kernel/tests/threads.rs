//! Threads and futexes: creating threads, their ids and limits, the clear-child-tid wake on
//! exit, and futex waits woken, requeued and timed out across threads.

use std::time::Duration;

use super::{Guest, err};
use crate::kernel::{MAX_THREADS, NewThread, ProcessEnd, Step};

const CLONE: u64 = 56;
const CLONE3: u64 = 435;
const EXIT: u64 = 60;
const GETTID: u64 = 186;
const FUTEX: u64 = 202;
const SET_TID_ADDRESS: u64 = 218;
const TGKILL: u64 = 234;
/// What glibc's `pthread_create` asks for.
const PTHREAD_FLAGS: u64 = 0x3d0f00;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE: u64 = 128;

fn word(guest: &Guest, addr: u64) -> u32 {
    u32::from_le_bytes(guest.get(addr, 4).try_into().unwrap())
}

/// `clone3`'s argument struct (88 bytes, the fields this kernel knows).
fn clone_args(flags: u64, child_tid: u64, parent_tid: u64, stack: (u64, u64), tls: u64) -> Vec<u8> {
    let fields = [
        flags, parent_tid, child_tid, parent_tid, 0, stack.0, stack.1, tls, 0, 0, 0,
    ];
    fields
        .iter()
        .flat_map(|field| field.to_le_bytes())
        .collect()
}

#[test]
fn clone_makes_threads_with_their_own_ids_and_tid_words() {
    let mut guest = Guest::one_shot(b"");
    let tid_word = guest.buffer(4);
    let step = guest.step(
        CLONE,
        &[PTHREAD_FLAGS, 0x7000_0000, tid_word, tid_word, 0x6000],
    );
    assert_eq!(
        step,
        Step::Clone(NewThread {
            tid: 2,
            stack: Some(0x7000_0000),
            tls: Some(0x6000)
        })
    );
    assert_eq!(word(&guest, tid_word), 2, "CLONE_PARENT_SETTID");
    assert_eq!(
        guest.call(GETTID, &[]),
        1,
        "the caller is still the first thread"
    );
    assert_eq!(guest.as_thread(2).call(GETTID, &[]), 2);
    assert_eq!(guest.call(39, &[]), 1, "getpid is the process's");

    // clone3, as glibc 2.34 and later call it (pidfd carries the tid word's address too).
    let child_tid = guest.buffer(4);
    let args = guest.put(&clone_args(
        PTHREAD_FLAGS,
        child_tid,
        child_tid,
        (0x7100_0000, 0x1000),
        0x6100,
    ));
    assert_eq!(
        guest.step(CLONE3, &[args, 88]),
        Step::Clone(NewThread {
            tid: 3,
            stack: Some(0x7100_1000),
            tls: Some(0x6100)
        })
    );
    assert_eq!(word(&guest, child_tid), 3);
}

#[test]
fn clone_refuses_what_is_not_a_thread_and_bad_arguments() {
    let mut guest = Guest::one_shot(b"");
    let tid_word = guest.buffer(4);
    // fork, vfork and posix_spawn make a process (`fork.rs`), not a thread.
    assert_eq!(guest.step(CLONE, &[17, 0, 0, 0, 0]), Step::Fork);
    guest.kernel.drop_fork();
    assert_eq!(
        guest.step(CLONE, &[0x4111, 0, 0, 0, 0]),
        Step::Fork,
        "CLONE_VM|CLONE_VFORK"
    );
    guest.kernel.drop_fork();
    // CLONE_THREAD without CLONE_SIGHAND and CLONE_VM, or with a namespace flag.
    assert_eq!(
        guest.call(CLONE, &[0x1_0000, 0, 0, 0, 0]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(CLONE, &[PTHREAD_FLAGS | 0x2_0000, 0, 0, 0, 0]),
        err(libc::EINVAL)
    );
    // The tid words and the TLS pointer must be the program's.
    assert_eq!(
        guest.call(CLONE, &[PTHREAD_FLAGS, 0, 0x10, tid_word, 0]),
        err(libc::EFAULT)
    );
    assert_eq!(
        guest.call(CLONE, &[PTHREAD_FLAGS, 0, tid_word, 0x10, 0]),
        err(libc::EFAULT)
    );
    assert_eq!(
        guest.call(CLONE, &[PTHREAD_FLAGS, 0, tid_word, tid_word, 1 << 47]),
        err(libc::EPERM)
    );
    // clone3's size, stack and unknown fields.
    let args = guest.put(&clone_args(
        PTHREAD_FLAGS,
        tid_word,
        tid_word,
        (0x7000_0000, 0),
        0,
    ));
    assert_eq!(
        guest.call(CLONE3, &[args, 88]),
        err(libc::EINVAL),
        "a stack of size 0"
    );
    assert_eq!(
        guest.call(CLONE3, &[args, 32]),
        err(libc::EINVAL),
        "smaller than version 0"
    );
    assert_eq!(
        guest.call(CLONE3, &[args, 1 << 20]),
        err(libc::EINVAL),
        "larger than a page"
    );
    let mut longer = clone_args(PTHREAD_FLAGS, tid_word, tid_word, (0, 0), 0);
    longer.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    let longer = guest.put(&longer);
    assert_eq!(
        guest.call(CLONE3, &[longer, 96]),
        err(libc::E2BIG),
        "unknown fields set"
    );
    let wrapping = guest.put(&clone_args(
        PTHREAD_FLAGS,
        tid_word,
        tid_word,
        (u64::MAX, 2),
        0,
    ));
    assert_eq!(guest.call(CLONE3, &[wrapping, 88]), err(libc::EINVAL));
    assert_eq!(guest.call(CLONE3, &[0x10, 88]), err(libc::EFAULT));
    assert_eq!(
        guest.kernel.thread_count(),
        1,
        "no refused call made a thread"
    );
}

#[test]
fn threads_are_limited_with_eagain() {
    let mut guest = Guest::one_shot(b"");
    for _ in 1..MAX_THREADS {
        assert!(
            guest.call(
                CLONE,
                &[
                    PTHREAD_FLAGS & !(CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID),
                    0,
                    0,
                    0,
                    0
                ]
            ) > 0
        );
    }
    assert_eq!(guest.kernel.thread_count(), MAX_THREADS);
    assert_eq!(guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]), err(libc::EAGAIN));
    // One exits; its id is free again only after the ids above it have been used.
    assert_eq!(guest.as_thread(500).step(EXIT, &[0]), Step::ThreadExit);
    guest.as_thread(1);
    assert_eq!(
        guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]),
        (MAX_THREADS + 1) as i64
    );
    assert_eq!(guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]), err(libc::EAGAIN));
}

#[test]
fn a_thread_exit_clears_its_tid_word_and_wakes_the_joiner() {
    let mut guest = Guest::one_shot(b"");
    let tid_word = guest.buffer(4);
    let tid = guest.call(CLONE, &[PTHREAD_FLAGS, 0, tid_word, tid_word, 0]) as u32;
    assert_eq!(word(&guest, tid_word), tid);
    // The first thread joins: it waits while the word holds the tid.
    let join = guest.step(FUTEX, &[tid_word, FUTEX_WAIT, u64::from(tid), 0]);
    assert_eq!(join, Step::Block(None));
    assert_eq!(guest.as_thread(tid).step(EXIT, &[0]), Step::ThreadExit);
    assert_eq!(word(&guest, tid_word), 0, "CLONE_CHILD_CLEARTID");
    assert_eq!(
        guest
            .as_thread(1)
            .step(FUTEX, &[tid_word, FUTEX_WAIT, u64::from(tid), 0]),
        Step::Return(0),
        "woken"
    );
    assert_eq!(guest.kernel.thread_count(), 1);
    // set_tid_address moves the word; the last thread's exit ends the program.
    let other = guest.buffer(4);
    guest.memory.write_obj(other, 9u32).unwrap();
    assert_eq!(guest.call(SET_TID_ADDRESS, &[other]), 1);
    assert_eq!(guest.step(EXIT, &[7]), Step::Stop(ProcessEnd::Exited(7)));
    assert_eq!(word(&guest, other), 0);
}

#[test]
fn futex_wakes_the_oldest_waiters_that_match_their_bitset() {
    let mut guest = Guest::one_shot(b"");
    let futex = guest.buffer(4);
    for _ in 0..3 {
        guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]);
    }
    // Threads 2 and 3 wait with bitsets 1 and 2; thread 4 with every bit.
    let wait = |guest: &mut Guest, tid: u32, bits: u64| {
        guest.as_thread(tid).step(
            FUTEX,
            &[futex, FUTEX_WAIT_BITSET | FUTEX_PRIVATE, 0, 0, 0, bits],
        )
    };
    assert_eq!(wait(&mut guest, 2, 1), Step::Block(None));
    assert_eq!(wait(&mut guest, 3, 2), Step::Block(None));
    assert_eq!(
        guest.as_thread(4).step(FUTEX, &[futex, FUTEX_WAIT, 0, 0]),
        Step::Block(None)
    );
    assert_eq!(
        guest
            .as_thread(1)
            .call(FUTEX, &[futex, FUTEX_WAKE_BITSET, 1, 0, 0, 2]),
        1,
        "thread 3 only"
    );
    assert_eq!(
        wait(&mut guest, 2, 1),
        Step::Block(None),
        "thread 2 still waits"
    );
    assert_eq!(wait(&mut guest, 3, 2), Step::Return(0));
    assert_eq!(
        guest
            .as_thread(1)
            .call(FUTEX, &[futex, FUTEX_WAKE, i32::MAX as u64]),
        2
    );
    assert_eq!(wait(&mut guest, 2, 1), Step::Return(0));
    assert_eq!(
        guest.as_thread(4).step(FUTEX, &[futex, FUTEX_WAIT, 0, 0]),
        Step::Return(0)
    );
    // A changed word, a zero bitset and a misaligned word.
    guest.memory.write_obj(futex, 5u32).unwrap();
    assert_eq!(
        guest.call(FUTEX, &[futex, FUTEX_WAIT, 0, 0]),
        err(libc::EAGAIN)
    );
    assert_eq!(
        guest.call(FUTEX, &[futex, FUTEX_WAIT_BITSET, 5, 0, 0, 0]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(FUTEX, &[futex + 1, FUTEX_WAKE, 1]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(FUTEX, &[futex, 6, 0]),
        err(libc::ENOSYS),
        "FUTEX_LOCK_PI"
    );
}

#[test]
fn futex_requeue_moves_waiters_and_wake_op_updates_the_second_word() {
    let mut guest = Guest::one_shot(b"");
    let (cond, mutex) = (guest.buffer(4), guest.buffer(4));
    for _ in 0..3 {
        guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]);
    }
    for tid in 2..=4 {
        assert_eq!(
            guest.as_thread(tid).step(FUTEX, &[cond, FUTEX_WAIT, 0, 0]),
            Step::Block(None)
        );
    }
    // Wake one, move the other two to the mutex word.
    assert_eq!(
        guest
            .as_thread(1)
            .call(FUTEX, &[cond, FUTEX_CMP_REQUEUE, 1, 2, mutex, 1]),
        err(libc::EAGAIN),
        "the word is not 1"
    );
    assert_eq!(
        guest.call(FUTEX, &[cond, FUTEX_CMP_REQUEUE, 1, 2, mutex, 0]),
        3
    );
    assert_eq!(
        guest.as_thread(2).step(FUTEX, &[cond, FUTEX_WAIT, 0, 0]),
        Step::Return(0)
    );
    assert_eq!(
        guest.as_thread(1).call(FUTEX, &[cond, FUTEX_WAKE, 10]),
        0,
        "nobody waits on cond now"
    );
    // FUTEX_WAKE_OP: mutex word += 1 (op 1, oparg 1), wake its waiters if it was 0 (cmp eq 0).
    let op = (1 << 28) | (1 << 12);
    assert_eq!(
        guest.call(FUTEX, &[cond, FUTEX_WAKE_OP, 1, 5, mutex, op]),
        2
    );
    assert_eq!(word(&guest, mutex), 1);
    assert_eq!(
        guest.as_thread(3).step(FUTEX, &[cond, FUTEX_WAIT, 0, 0]),
        Step::Return(0)
    );
    assert_eq!(
        guest.as_thread(4).step(FUTEX, &[cond, FUTEX_WAIT, 0, 0]),
        Step::Return(0)
    );
}

#[test]
fn a_futex_wait_times_out_and_a_woken_waiter_returns_even_after_its_timeout() {
    let mut guest = Guest::one_shot(b"");
    let futex = guest.buffer(4);
    let zero = guest.put(&[0; 16]);
    assert_eq!(
        guest.call(FUTEX, &[futex, FUTEX_WAIT, 0, zero]),
        err(libc::ETIMEDOUT),
        "a zero timeout"
    );
    let short = guest.put(&[0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x42, 0x0f, 0, 0, 0, 0, 0]); // 1 ms
    assert!(matches!(
        guest.step(FUTEX, &[futex, FUTEX_WAIT, 0, short]),
        Step::Block(Some(_))
    ));
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(
        guest.step(FUTEX, &[futex, FUTEX_WAIT, 0, short]),
        Step::Return(err(libc::ETIMEDOUT) as u64)
    );
    assert_eq!(
        guest.call(FUTEX, &[futex, FUTEX_WAKE, 1]),
        0,
        "the timed-out waiter left the queue"
    );
    // Woken before its retry: the retry returns 0 although the timeout has passed since.
    guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]);
    assert!(matches!(
        guest
            .as_thread(2)
            .step(FUTEX, &[futex, FUTEX_WAIT, 0, short]),
        Step::Block(Some(_))
    ));
    assert_eq!(guest.as_thread(1).call(FUTEX, &[futex, FUTEX_WAKE, 1]), 1);
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(
        guest
            .as_thread(2)
            .step(FUTEX, &[futex, FUTEX_WAIT, 0, short]),
        Step::Return(0)
    );
}

#[test]
fn signals_reach_threads_by_id() {
    let mut guest = Guest::one_shot(b"");
    guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]);
    assert_eq!(guest.call(TGKILL, &[1, 2, 0]), 0, "thread 2 exists");
    assert_eq!(guest.call(TGKILL, &[1, 3, 0]), err(libc::ESRCH));
    assert_eq!(
        guest.call(200, &[2, 23]),
        0,
        "tkill: SIGURG is ignored by default"
    );
    assert_eq!(
        guest.step(TGKILL, &[1, 2, 11]),
        Step::Stop(ProcessEnd::Signaled(11))
    );
    let mut guest = Guest::one_shot(b"");
    assert_eq!(guest.step(24, &[]), Step::Yield, "sched_yield");
}

#[test]
fn each_thread_has_its_own_name() {
    let mut guest = Guest::one_shot(b"");
    let name = guest.buffer(16);
    assert_eq!(guest.call(157, &[16, name]), 0, "PR_GET_NAME");
    assert_eq!(&guest.get(name, 10), b"bootstrap\0");
    guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]);
    let long = guest.put_str("tokio-runtime-worker");
    assert_eq!(guest.as_thread(2).call(157, &[15, long]), 0, "PR_SET_NAME");
    assert_eq!(guest.call(157, &[16, name]), 0);
    assert_eq!(
        &guest.get(name, 16),
        b"tokio-runtime-w\0",
        "cut to 15 bytes"
    );
    assert_eq!(guest.as_thread(1).call(157, &[16, name]), 0);
    assert_eq!(
        &guest.get(name, 10),
        b"bootstrap\0",
        "the first thread's is its own"
    );
    assert_eq!(guest.call(157, &[15, 0x10]), err(libc::EFAULT));
    assert_eq!(
        guest.call(157, &[4, 2]),
        err(libc::EINVAL),
        "PR_SET_DUMPABLE 2"
    );
    assert_eq!(guest.call(157, &[9999, 0]), err(libc::EINVAL));
}

#[test]
fn a_thread_exit_releases_the_robust_mutexes_it_owns() {
    let mut guest = Guest::one_shot(b"");
    let tid = guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]) as u32;
    // The list: head -> a (owned by the thread, with waiters) -> b (owned by thread 1) -> head.
    let region = guest.buffer(64);
    let (head, a, b) = (region, region + 24, region + 40);
    let words = |values: &[u64]| {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>()
    };
    guest.memory.write(head, &words(&[a, 8, 0])).unwrap();
    guest
        .memory
        .write(a, &words(&[b, u64::from(tid | 0x8000_0000)]))
        .unwrap();
    guest.memory.write(b, &words(&[head, 1])).unwrap();
    assert_eq!(guest.as_thread(tid).call(273, &[head, 24]), 0);
    assert_eq!(guest.call(273, &[head, 16]), err(libc::EINVAL));
    let (head_out, len_out) = (guest.buffer(8), guest.buffer(8));
    assert_eq!(
        guest
            .as_thread(1)
            .call(274, &[u64::from(tid), head_out, len_out]),
        0
    );
    assert_eq!(guest.get(head_out, 8), head.to_le_bytes());
    assert_eq!(guest.get(len_out, 8), 24u64.to_le_bytes());
    // Thread 1 waits on the mutex the thread holds.
    let word_a = a + 8;
    let held = u64::from(tid | 0x8000_0000);
    assert_eq!(
        guest.step(FUTEX, &[word_a, FUTEX_WAIT, held, 0]),
        Step::Block(None)
    );
    assert_eq!(guest.as_thread(tid).step(EXIT, &[0]), Step::ThreadExit);
    assert_eq!(
        word(&guest, word_a),
        0x8000_0000 | 0x4000_0000,
        "FUTEX_OWNER_DIED, waiters kept"
    );
    assert_eq!(word(&guest, b + 8), 1, "thread 1's own mutex is left alone");
    assert_eq!(
        guest
            .as_thread(1)
            .step(FUTEX, &[word_a, FUTEX_WAIT, held, 0]),
        Step::Return(0),
        "the waiter was woken"
    );
}

#[test]
fn futex_waiters_a_snapshot_could_not_hold_are_refused() {
    let mut guest = Guest::one_shot(b"");
    let futex = guest.buffer(4);
    for _ in 0..3 {
        guest.call(CLONE, &[0x10f00, 0, 0, 0, 0]);
    }
    for (tid, bits) in [(2, 1), (3, 2), (4, u64::from(u32::MAX))] {
        assert_eq!(
            guest
                .as_thread(tid)
                .step(FUTEX, &[futex, FUTEX_WAIT_BITSET, 0, 0, 0, bits]),
            Step::Block(None)
        );
    }
    // Woken and not yet back from its call, thread 3 is still listed.
    assert_eq!(
        guest
            .as_thread(1)
            .call(FUTEX, &[futex, FUTEX_WAKE_BITSET, 1, 0, 0, 2]),
        1
    );
    let check = |guest: &Guest| super::snapshot_check(guest, lambda_core::Contract::Stdio);
    check(&guest).unwrap();

    let refused = |forge: &dyn Fn(&mut serde_json::Value), because: &str| {
        let mut forged = super::copy_of(&guest);
        forged.kernel.futexes = super::reserialized(&guest.kernel.futexes, forge);
        let why = check(&forged).expect_err(because);
        assert!(why.contains(because), "{why}");
    };
    refused(
        &|v| v["waiters"][0]["tid"] = 9.into(),
        "futex waiters: a waiter is thread 9, which the program lacks",
    );
    refused(
        &|v| v["waiters"][1]["tid"] = 2.into(),
        "thread 2 waits twice",
    );
    // Each thread may wait once, so no more waiters than threads.
    refused(
        &|v| {
            let first = v["waiters"][0].clone();
            let waiters = v["waiters"].as_array_mut().unwrap();
            waiters.extend(std::iter::repeat_n(first, MAX_THREADS));
        },
        "thread 2 waits twice",
    );
    for uaddr in [futex + 1, crate::mm::layout::USER_END] {
        refused(
            &|v| v["waiters"][2]["uaddr"] = uaddr.into(),
            &format!("thread 4 waits on {uaddr:#x}, not an aligned word of the program's half"),
        );
    }
    refused(
        &|v| v["waiters"][0]["bitset"] = 0.into(),
        "thread 2 waits with an empty bitset",
    );
}
