//! The guest's kernel: sequences of syscalls with hostile arguments, made against a kernel
//! already holding state (a file of the package open, a `/tmp` file, a connection to the
//! Runtime API watched by an epoll set, an eventfd, an anonymous mapping), as a program
//! would make them, without a VM. After every call: an error is a Linux errno; at the end
//! (and every 16 calls): descriptors, mappings, `/tmp`, guest memory held and the response
//! are within their limits. Any panic is a crash.
//!
//! The input:
//! - byte 0: bit 0 set for a Runtime API program (one invocation waiting), else one-shot;
//! - byte 1: n, then n bytes: the event (stdin, or the invocation's payload);
//! - bytes 2..4 (after the event): m (little-endian, at most 4096), then m bytes copied to
//!   the start of scratch memory;
//! - then up to 64 calls, each: a selector byte (below 240: the n-th syscall the kernel
//!   answers; from 240: the next two bytes are any syscall number), then six arguments, each
//!   a tag byte and its operands (see `Arg`).

#![no_main]

use lambda_vmm::fuzzing::{KernelUnderTest, Outcome, SCRATCH, SCRATCH_LEN};
use libfuzzer_sys::fuzz_target;

/// Most calls one input makes.
const MAX_CALLS: usize = 64;
/// Scratch offsets: what the input copies in, structures built from it, iovec arrays, the
/// fixed paths.
const STRUCTS_AT: u64 = 32 << 10;
const IOVECS_AT: u64 = 40 << 10;
const PATHS_AT: u64 = 48 << 10;

/// Paths a program might name, written to scratch memory before the first call.
const PATHS: &[&[u8]] = &[
    b"/tmp/a\0",
    b"/tmp/b\0",
    b"/tmp/d\0",
    b"/tmp/d/e\0",
    b"/var/task/data.txt\0",
    b"/var/task\0",
    b"/tmp\0",
    b".\0",
    b"..\0",
    b"/proc/self/exe\0",
    b"\0",
    b"data.txt\0",
    b"/dev/null\0",
    b"/tmp/a/../b\0",
];

/// Descriptors worth naming: the open ones, a closed one, the limits, `AT_FDCWD`, junk.
const FDS: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    1023,
    1024,
    -100i64 as u64,
    u64::MAX,
];
/// Lengths and counts worth passing.
const LENGTHS: &[u64] = &[
    0,
    1,
    2,
    8,
    16,
    64,
    4095,
    4096,
    4097,
    65536,
    1 << 20,
    (1 << 20) + 1,
    u32::MAX as u64,
    i32::MAX as u64,
    i64::MAX as u64,
    u64::MAX,
];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte().unwrap_or(0)) % from.len()]
    }
}

/// One argument, chosen by a tag byte.
fn arg(input: &mut Input, kernel: &mut KernelUnderTest, bad: &[u64], paths: &[u64]) -> u64 {
    match input.byte().unwrap_or(0) % 11 {
        0 => u64::from(input.byte().unwrap_or(0)),
        1 => input.pick(FDS),
        2 => SCRATCH + u64::from(input.u16()) % SCRATCH_LEN,
        3 => input.pick(bad),
        4 => input.u64(),
        5 => input.pick(LENGTHS),
        6 => u64::from(input.u32()),
        7 => input.pick(paths),
        8 => {
            // A structure (sockaddr, timespec, epoll_event, ...) of the input's bytes.
            let at = STRUCTS_AT + u64::from(input.byte().unwrap_or(0)) * 16;
            let len = usize::from(input.byte().unwrap_or(0) % 65);
            let bytes = input.take(len).to_vec();
            kernel.write_scratch(at, &bytes);
            SCRATCH + at
        }
        9 => {
            // An iovec array of 1 to 4 entries over scratch memory.
            let count = 1 + u64::from(input.byte().unwrap_or(0) % 4);
            let mut vec = Vec::new();
            for _ in 0..count {
                let base = SCRATCH + u64::from(input.u16()) % SCRATCH_LEN;
                let len = if input.byte().unwrap_or(0).is_multiple_of(4) {
                    input.pick(LENGTHS)
                } else {
                    u64::from(input.byte().unwrap_or(0))
                };
                vec.extend_from_slice(&base.to_le_bytes());
                vec.extend_from_slice(&len.to_le_bytes());
            }
            kernel.write_scratch(IOVECS_AT, &vec);
            SCRATCH + IOVECS_AT
        }
        _ => u64::MAX - u64::from(input.byte().unwrap_or(0)),
    }
}

/// Opens what a running program typically holds, so calls find state to act on.
fn prologue(kernel: &mut KernelUnderTest, runtime: bool, paths: &[u64]) {
    const O_RDONLY: u64 = 0;
    const O_RDWR_CREAT: u64 = 0o2 | 0o100;
    let at_fdcwd = -100i64 as u64;
    // 3: a file of the package; 4: a /tmp file with something in it.
    kernel.syscall(257, [at_fdcwd, paths[4], O_RDONLY, 0, 0, 0]);
    kernel.syscall(257, [at_fdcwd, paths[0], O_RDWR_CREAT, 0o644, 0, 0]);
    kernel.write_scratch(STRUCTS_AT, b"some bytes in /tmp/a");
    kernel.syscall(1, [4, SCRATCH + STRUCTS_AT, 20, 0, 0, 0]);
    // 5: a TCP socket, connected to the Runtime API when there is one.
    kernel.syscall(41, [2, 1, 0, 0, 0, 0]);
    if runtime {
        let mut address = [0u8; 16];
        address[0] = 2; // AF_INET
        address[2..4].copy_from_slice(&9001u16.to_be_bytes());
        address[4..8].copy_from_slice(&[127, 0, 0, 1]);
        kernel.write_scratch(STRUCTS_AT, &address);
        kernel.syscall(42, [5, SCRATCH + STRUCTS_AT, 16, 0, 0, 0]);
    }
    // 6: an epoll set watching the socket for input; 7: an eventfd.
    kernel.syscall(291, [0, 0, 0, 0, 0, 0]);
    let mut event = [0u8; 12];
    event[0] = 1; // EPOLLIN
    event[4] = 5;
    kernel.write_scratch(STRUCTS_AT, &event);
    kernel.syscall(233, [6, 1, 5, SCRATCH + STRUCTS_AT, 0, 0]);
    kernel.syscall(290, [0, 0, 0, 0, 0, 0]);
    // An anonymous mapping of 64 KiB.
    kernel.syscall(9, [0, 64 << 10, 3, 0x22, u64::MAX, 0]);
}

fuzz_target!(|data: &[u8]| {
    let verbose = lambda_fuzz::verbose();
    let mut input = Input(data);
    let runtime = input.byte().unwrap_or(0) & 1 == 1;
    let event_len = usize::from(input.byte().unwrap_or(0));
    let event = input.take(event_len).to_vec();
    let mut kernel = if runtime {
        KernelUnderTest::runtime(&event)
    } else {
        KernelUnderTest::one_shot(&event)
    };
    let mut paths = Vec::new();
    let mut at = PATHS_AT;
    for path in PATHS {
        kernel.write_scratch(at, path);
        paths.push(SCRATCH + at);
        at += path.len() as u64;
    }
    // A name of NAME_MAX + 1 bytes, and a path of PATH_MAX bytes.
    let mut long = b"/tmp/".to_vec();
    long.extend(std::iter::repeat_n(b'x', 256));
    long.push(0);
    kernel.write_scratch(at, &long);
    paths.push(SCRATCH + at);
    at += long.len() as u64;
    let mut longest = std::iter::repeat_n(b'/', 4096).collect::<Vec<u8>>();
    longest.push(0);
    kernel.write_scratch(at, &longest);
    paths.push(SCRATCH + at);

    let scratch_len = usize::from(input.u16()).min(4096);
    let scratch = input.take(scratch_len).to_vec();
    kernel.write_scratch(0, &scratch);

    prologue(&mut kernel, runtime, &paths);
    let numbers = KernelUnderTest::syscall_numbers();
    let bad = KernelUnderTest::bad_addresses();
    // Whether the program ended (no snapshot can be taken of it after).
    let mut ended = false;
    for call in 0..MAX_CALLS {
        let Some(selector) = input.byte() else {
            break;
        };
        let number = if selector < 240 {
            numbers[usize::from(selector) % numbers.len()]
        } else {
            u64::from(input.u16())
        };
        let mut args = [0u64; 6];
        for slot in &mut args {
            *slot = arg(&mut input, &mut kernel, &bad, &paths);
        }
        let outcome = kernel.syscall(number, args);
        if verbose {
            eprintln!("{number}({args:#x?}) -> {outcome:?}");
        }
        match outcome {
            Outcome::Returned(value) => {
                assert!(value >= -4095, "syscall {number} returned {value}");
            }
            Outcome::Abandoned => {}
            Outcome::Stopped => {
                ended = true;
                break;
            }
        }
        kernel.drain_runtime_api();
        if call % 16 == 15 {
            kernel
                .check_limits()
                .unwrap_or_else(|what| panic!("over a limit: {what}"));
            kernel
                .check_snapshot_state()
                .unwrap_or_else(|what| panic!("a state a snapshot file is refused for: {what}"));
        }
    }
    kernel
        .check_limits()
        .unwrap_or_else(|what| panic!("over a limit: {what}"));
    if !ended {
        kernel
            .check_snapshot_state()
            .unwrap_or_else(|what| panic!("a state a snapshot file is refused for: {what}"));
    }
});
