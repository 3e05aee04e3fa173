//! Pipes: data through them in order, end of file and EPIPE when an end closes, blocking and
//! non-blocking ends, atomic small writes, the capacity, readiness for epoll and poll; and
//! Unix socket pairs, built on them.

use super::{Guest, err};
use crate::kernel::Step;
use crate::kernel::pipe::{PIPE_BYTES_MAX, PIPE_CAPACITY};

const READ: u64 = 0;
const WRITE: u64 = 1;
const CLOSE: u64 = 3;
const POLL: u64 = 7;
const DUP: u64 = 32;
const PIPE: u64 = 22;
const PIPE2: u64 = 293;

/// A pipe's (read end, write end).
fn pipe(guest: &mut Guest, flags: u64) -> (u64, u64) {
    let fds = guest.buffer(8);
    assert_eq!(guest.call(PIPE2, &[fds, flags]), 0);
    let bytes = guest.get(fds, 8);
    let end = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
    (end(0), end(4))
}

#[test]
fn bytes_go_through_in_order_and_closing_the_writer_is_end_of_file() {
    let mut guest = Guest::one_shot(b"");
    let (read_end, write_end) = pipe(&mut guest, 0);
    let hello = guest.put(b"hello, ");
    let world = guest.put(b"world");
    assert_eq!(guest.call(WRITE, &[write_end, hello, 7]), 7);
    assert_eq!(guest.call(WRITE, &[write_end, world, 5]), 5);
    let buf = guest.buffer(64);
    assert_eq!(guest.call(READ, &[read_end, buf, 4]), 4);
    assert_eq!(guest.call(READ, &[read_end, buf + 4, 64]), 8);
    assert_eq!(&guest.get(buf, 12), b"hello, world");
    // Empty with a writer: a blocking read waits.
    assert_eq!(guest.step(READ, &[read_end, buf, 64]), Step::Block(None));
    // A dup keeps the write end open; closing both is end of file.
    let second = guest.call(DUP, &[write_end]) as u64;
    assert_eq!(guest.call(CLOSE, &[write_end]), 0);
    assert_eq!(guest.step(READ, &[read_end, buf, 64]), Step::Block(None));
    assert_eq!(guest.call(CLOSE, &[second]), 0);
    assert_eq!(guest.call(READ, &[read_end, buf, 64]), 0);
    // Writing to a pipe whose reader is gone.
    // As most runtimes do: by default SIGPIPE would end the program (`tests/signals.rs`).
    guest.ignore_signal(libc::SIGPIPE as u64);
    let (read_end, write_end) = pipe(&mut guest, 0);
    assert_eq!(guest.call(CLOSE, &[read_end]), 0);
    assert_eq!(guest.call(WRITE, &[write_end, hello, 7]), err(libc::EPIPE));
    assert_eq!(guest.call(READ, &[write_end, buf, 1]), err(libc::EBADF));
    // `pipe` is pipe2 without flags; bad flags and pointers.
    let fds = guest.buffer(8);
    assert_eq!(guest.call(PIPE, &[fds]), 0);
    assert_eq!(
        guest.call(PIPE2, &[fds, libc::O_DIRECT as u64]),
        err(libc::EINVAL)
    );
    assert_eq!(guest.call(PIPE2, &[0x10, 0]), err(libc::EFAULT));
}

#[test]
fn a_full_pipe_takes_what_fits_and_small_writes_are_whole() {
    let mut guest = Guest::one_shot(b"");
    let (read_end, write_end) = pipe(&mut guest, libc::O_NONBLOCK as u64);
    let big = guest.buffer(PIPE_CAPACITY + 100);
    let buf = guest.buffer(PIPE_CAPACITY);
    assert_eq!(guest.call(READ, &[read_end, buf, 1]), err(libc::EAGAIN));
    assert_eq!(
        guest.call(WRITE, &[write_end, big, PIPE_CAPACITY as u64 - 10]),
        PIPE_CAPACITY as i64 - 10
    );
    // 10 bytes of room: a 100-byte write (under PIPE_BUF) goes whole or not at all.
    assert_eq!(guest.call(WRITE, &[write_end, big, 100]), err(libc::EAGAIN));
    assert_eq!(
        guest.call(WRITE, &[write_end, big, 5000]),
        10,
        "over PIPE_BUF: partial"
    );
    assert_eq!(guest.call(WRITE, &[write_end, big, 1]), err(libc::EAGAIN));
    assert_eq!(guest.call(READ, &[read_end, buf, 100]), 100);
    assert_eq!(guest.call(WRITE, &[write_end, big, 100]), 100);
}

#[test]
fn all_pipes_together_hold_a_bounded_amount() {
    let mut guest = Guest::one_shot(b"");
    let big = guest.buffer(PIPE_CAPACITY);
    let mut held = 0;
    let mut last = None;
    while held < PIPE_BYTES_MAX {
        let (read_end, write_end) = pipe(&mut guest, libc::O_NONBLOCK as u64);
        assert_eq!(
            guest.call(WRITE, &[write_end, big, PIPE_CAPACITY as u64]),
            PIPE_CAPACITY as i64
        );
        held += PIPE_CAPACITY;
        last = Some(read_end);
    }
    let (_, write_end) = pipe(&mut guest, libc::O_NONBLOCK as u64);
    assert_eq!(
        guest.call(WRITE, &[write_end, big, 1]),
        err(libc::EAGAIN),
        "over the total"
    );
    // Reading one pipe frees room in every other.
    let buf = guest.buffer(PIPE_CAPACITY);
    assert_eq!(guest.call(READ, &[last.unwrap(), buf, 10]), 10);
    assert_eq!(guest.call(WRITE, &[write_end, big, 1]), 1);
    // Closing both ends of a full pipe gives its bytes back.
    let (read_end, write_end) = pipe(&mut guest, libc::O_NONBLOCK as u64);
    assert_eq!(guest.call(WRITE, &[write_end, big, 9]), 9);
    assert_eq!(guest.call(CLOSE, &[read_end]), 0);
    assert_eq!(guest.call(CLOSE, &[write_end]), 0);
}

#[test]
fn poll_sees_data_and_the_closed_end() {
    let mut guest = Guest::one_shot(b"");
    let (read_end, write_end) = pipe(&mut guest, 0);
    let pollfds = |guest: &mut Guest| {
        let mut bytes = Vec::new();
        for fd in [read_end, write_end] {
            bytes.extend_from_slice(&(fd as i32).to_le_bytes());
            bytes.extend_from_slice(&(libc::POLLIN | libc::POLLOUT).to_le_bytes());
            bytes.extend_from_slice(&0i16.to_le_bytes());
        }
        guest.put(&bytes)
    };
    let revents = |guest: &Guest, at: u64, index: u64| {
        i16::from_le_bytes(guest.get(at + index * 8 + 6, 2).try_into().unwrap())
    };
    let at = pollfds(&mut guest);
    assert_eq!(guest.call(POLL, &[at, 2, 0]), 1, "only the write end");
    assert_eq!(revents(&guest, at, 1), libc::POLLOUT);
    let one = guest.put(b"x");
    guest.call(WRITE, &[write_end, one, 1]);
    let at = pollfds(&mut guest);
    assert_eq!(guest.call(POLL, &[at, 2, 0]), 2);
    assert_eq!(revents(&guest, at, 0), libc::POLLIN);
    assert_eq!(guest.call(CLOSE, &[write_end]), 0);
    let at = guest.put(
        &[
            &(read_end as i32).to_le_bytes()[..],
            &libc::POLLIN.to_le_bytes(),
            &[0, 0],
        ]
        .concat(),
    );
    assert_eq!(guest.call(POLL, &[at, 1, 0]), 1);
    assert_eq!(revents(&guest, at, 0), libc::POLLIN | libc::POLLHUP);
}

#[test]
fn socket_pairs_carry_bytes_both_ways_and_shut_down_one_way() {
    let mut guest = Guest::one_shot(b"");
    let sv = guest.buffer(8);
    let stream_cloexec_nonblock = 1 | 0o2_000_000 | 0o4000;
    assert_eq!(guest.call(53, &[1, stream_cloexec_nonblock, 0, sv]), 0);
    let bytes = guest.get(sv, 8);
    let a = u64::from(u32::from_le_bytes(bytes[0..4].try_into().unwrap()));
    let b = u64::from(u32::from_le_bytes(bytes[4..8].try_into().unwrap()));
    let ping = guest.put(b"ping");
    let pong = guest.put(b"pong");
    let buf = guest.buffer(16);
    assert_eq!(
        guest.call(READ, &[b, buf, 16]),
        err(libc::EAGAIN),
        "nothing yet"
    );
    assert_eq!(guest.call(WRITE, &[a, ping, 4]), 4);
    assert_eq!(guest.call(44, &[b, pong, 4, 0, 0, 0]), 4, "sendto");
    assert_eq!(guest.call(45, &[b, buf, 16, 0, 0, 0]), 4, "recvfrom");
    assert_eq!(&guest.get(buf, 4), b"ping");
    assert_eq!(guest.call(READ, &[a, buf, 16]), 4);
    assert_eq!(&guest.get(buf, 4), b"pong");
    assert_eq!(
        guest.call(45, &[a, buf, 16, 2, 0, 0]),
        err(libc::EOPNOTSUPP),
        "MSG_PEEK"
    );
    // Shut down a's writing side: b reads end of file; a's writes fail.
    // As most runtimes do: by default SIGPIPE would end the program (`tests/signals.rs`).
    guest.ignore_signal(libc::SIGPIPE as u64);
    assert_eq!(guest.call(48, &[a, 1]), 0);
    assert_eq!(guest.call(READ, &[b, buf, 16]), 0);
    assert_eq!(guest.call(WRITE, &[a, ping, 4]), err(libc::EPIPE));
    assert_eq!(
        guest.call(WRITE, &[b, ping, 4]),
        4,
        "the other way still works"
    );
    assert_eq!(guest.call(CLOSE, &[a]), 0);
    assert_eq!(
        guest.call(WRITE, &[b, ping, 4]),
        err(libc::EPIPE),
        "the peer is gone"
    );
    // Only AF_UNIX stream pairs.
    assert_eq!(guest.call(53, &[2, 1, 0, sv]), err(libc::EAFNOSUPPORT));
    assert_eq!(
        guest.call(53, &[1, 2, 0, sv]),
        err(libc::EOPNOTSUPP),
        "SOCK_DGRAM"
    );
    assert_eq!(guest.call(53, &[1, 1, 0, 0x10]), err(libc::EFAULT));
}

/// What `Kernel::check` says of the guest's kernel as a snapshot file of a one-shot
/// function would bring it back.
fn check(guest: &Guest) -> Result<(), String> {
    super::snapshot_check(guest, lambda_core::Contract::Stdio)
}

#[test]
fn each_pipe_counts_the_open_descriptions_of_its_ends_and_a_snapshot_must_agree() {
    const SHUTDOWN: u64 = 48;
    const SOCKETPAIR: u64 = 53;
    const FORK: u64 = 57;
    let mut guest = Guest::one_shot(b"");
    let (read_end, write_end) = pipe(&mut guest, 0);
    // A dup shares the open description: one writer still.
    let second = guest.call(DUP, &[write_end]) as u64;
    let pair = guest.buffer(8);
    assert_eq!(guest.call(SOCKETPAIR, &[1, 1, 0, pair]), 0);
    let ends = guest.get(pair, 8);
    let one = u64::from(u32::from_le_bytes(ends[..4].try_into().unwrap()));
    let other = u64::from(u32::from_le_bytes(ends[4..].try_into().unwrap()));
    assert_eq!(guest.call(DUP, &[one]), (other + 1) as i64);
    assert_eq!(guest.call(SHUTDOWN, &[one, libc::SHUT_WR as u64]), 0);
    check(&guest).unwrap();
    // A child closes one end and ends without closing the rest: its copies of them are
    // closed with it.
    assert_eq!(guest.step(FORK, &[]), Step::Fork);
    guest.kernel.begin_child(&guest.memory).unwrap();
    assert_eq!(guest.call(CLOSE, &[read_end]), 0);
    guest
        .kernel
        .end_child(Some(crate::kernel::fork::ChildEnd::Exited(0)));
    check(&guest).unwrap();
    assert_eq!(guest.call(CLOSE, &[second]), 0);
    assert_eq!(guest.call(CLOSE, &[other]), 0);
    check(&guest).unwrap();

    // The same kernel with its first pipe counting a writer more than is open (its reader
    // would never see the end of the file) or none (the pipe would go under its writer).
    let forged = |writers: u64| {
        let mut forged = super::copy_of(&guest);
        forged.kernel.pipes = super::reserialized(&guest.kernel.pipes, |value| {
            value["pipes"]["0"]["writers"] = writers.into();
        });
        check(&forged)
    };
    forged(1).unwrap();
    for writers in [0, 2] {
        let why = forged(writers).expect_err("refused");
        assert!(
            why.contains(&format!(
                "pipes: pipe 0 counts 1 readers and {writers} writers where descriptors open 1 and 1"
            )),
            "{why}"
        );
    }
}
