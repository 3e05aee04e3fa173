//! `misbehave`: one function with many ways to fail, for testing how the engine contains them.
//!
//! The payload (stdin, trimmed; a JSON string such as `"ud2"` works too) picks the behaviour:
//!
//! | payload           | what the program does                                   | natively   |
//! |-------------------|---------------------------------------------------------|------------|
//! | `null`            | writes through a null pointer                           | SIGSEGV    |
//! | `ud2`             | executes `ud2`                                          | SIGILL     |
//! | `div0`            | divides by zero with a raw `div` (no Rust check/panic)   | SIGFPE     |
//! | `spin`            | loops forever without a syscall                         | timeout    |
//! | `memory-bomb`     | allocates and touches 1 MiB blocks until allocation fails| abort      |
//! | `output-flood`    | writes 7 MiB to stdout (over the 6 MB response limit)    | exit 0     |
//! | `log-flood`       | writes 64 MiB to stderr, then `done` on stdout           | exit 0     |
//! | `unknown-syscall` | raw syscall 1000, prints `{"ret":-38}` (ENOSYS)           | exit 0     |
//! | `bad-pointer`     | raw `write(1, 0x10, 16)`, prints `{"ret":-14}` (EFAULT)   | exit 0     |
//! | `exit-3`          | exits with status 3                                     | exit 3     |
//! | `abort`           | `std::process::abort()`                                 | SIGABRT    |
//! | `panic`           | `panic!("boom")`                                        | exit 101   |
//! | `stack-overflow`  | unbounded recursion                                     | SIGSEGV/ABRT|
//! | `env`             | prints `KEY=VALUE` lines, then `argv0=...`              | exit 0     |
//! | `connect`         | tries TCP to 127.0.0.1:80, 10.0.0.1:80 and [::1]:80, prints each error kind | exit 0 |
//! | `thread`          | tries to spawn a thread, prints `spawned` or the error  | exit 0     |
//! | `files`           | exercises /tmp and /var/task (write, pwrite, pread, seek, dirs, rename, unlink, read-only and missing paths), one line per step | exit 0 |
//! | `syscall-fuzz N`  | N raw syscalls with random numbers and arguments (seeded by N), skipping the ones that end, block or unmap the program; prints `survived N` | exit 0 |
//! | `code-bytes`      | prints the 10 bytes of the forge gadget (a `movabs` whose immediate holds `0f 05`) in hex | exit 0 |
//! | `forge-sites`     | makes the kernel see a `syscall` where the program has none: calls into the middle of the gadget's `movabs`, then jumps to the ring-0 stub itself with a forged return address; prints `forged` | exit 0 |
//! | anything else     | echoes the payload back verbatim                        | exit 0     |
//!
//! A fault that unexpectedly does not happen is reported on stderr with exit status 1, so a
//! test can tell "the VMM swallowed the fault" apart from "the fault was reported".

use std::arch::asm;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::process::ExitCode;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

fn main() -> ExitCode {
    let mut payload = Vec::new();
    if let Err(err) = io::stdin().lock().read_to_end(&mut payload) {
        eprintln!("misbehave: cannot read stdin: {err}");
        return ExitCode::FAILURE;
    }
    let text = String::from_utf8_lossy(&payload);
    match selector(&text) {
        "null" => null_write(),
        "ud2" => invalid_opcode(),
        "div0" => divide_by_zero(),
        "spin" => spin(),
        "memory-bomb" => memory_bomb(),
        "output-flood" => respond(&vec![b'o'; 7 * MIB]),
        "log-flood" => log_flood(),
        "unknown-syscall" => {
            respond(format!("{{\"ret\":{}}}", raw_syscall3(1000, 0, 0, 0)).as_bytes())
        }
        // 0x10 is never mapped: the kernel must refuse the pointer, not crash or read it.
        "bad-pointer" => {
            respond(format!("{{\"ret\":{}}}", raw_syscall3(1, 1, 0x10, 16)).as_bytes())
        }
        "exit-3" => ExitCode::from(3),
        "abort" => std::process::abort(),
        "panic" => panic!("boom"),
        "stack-overflow" => {
            recurse(0);
            didnt_fault("stack overflow")
        }
        "env" => print_env(),
        "connect" => connect_elsewhere(),
        fuzz if fuzz.starts_with("syscall-fuzz ") => syscall_fuzz(&fuzz["syscall-fuzz ".len()..]),
        "thread" => spawn_thread(),
        "files" => files(),
        "code-bytes" => code_bytes(),
        "forge-sites" => forge_sites(),
        _ => respond(&payload),
    }
}

/// Trims whitespace and, if present, one pair of JSON string quotes.
fn selector(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

fn respond(bytes: &[u8]) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("misbehave: cannot write stdout: {err}");
            ExitCode::FAILURE
        }
    }
}

fn didnt_fault(what: &str) -> ExitCode {
    eprintln!("misbehave: {what} did not fault");
    ExitCode::FAILURE
}

fn null_write() -> ExitCode {
    // black_box hides the constant so the compiler cannot turn the store into a trap of its own.
    let null = black_box(0usize) as *mut u8;
    // SAFETY: none; faulting is the point.
    unsafe { std::ptr::write_volatile(null, 1) };
    didnt_fault("write to address 0")
}

fn invalid_opcode() -> ExitCode {
    // SAFETY: ud2 only raises #UD.
    unsafe { asm!("ud2", options(nomem, nostack)) };
    didnt_fault("ud2")
}

fn divide_by_zero() -> ExitCode {
    // A raw `div`: Rust's `/` would check the divisor and panic instead of raising #DE.
    let divisor = black_box(0u64);
    let quotient: u64;
    // SAFETY: only raises #DE; rax/rdx are declared as clobbered.
    unsafe {
        asm!(
            "div {divisor}",
            divisor = in(reg) divisor,
            inlateout("rax") 1u64 => quotient,
            inlateout("rdx") 0u64 => _,
            options(nomem, nostack),
        )
    };
    black_box(quotient);
    didnt_fault("division by zero")
}

fn spin() -> ExitCode {
    // Pure user-mode work: only a timeout (a vCPU kick) can stop it.
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
        std::hint::spin_loop();
    }
}

fn memory_bomb() -> ExitCode {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::new();
        if block.try_reserve_exact(MIB).is_err() || hoard.try_reserve(1).is_err() {
            eprintln!("misbehave: allocator failed after {} MiB", hoard.len());
            // What Rust does by default when an allocation fails: report and abort.
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; MIB]>());
        }
        // Touch every page so the memory is really backed, not just reserved.
        block.resize(MIB, 0);
        for offset in (0..MIB).step_by(PAGE) {
            block[offset] = 0xa5;
        }
        hoard.push(black_box(block));
    }
}

fn log_flood() -> ExitCode {
    let chunk = vec![b'l'; 64 * 1024];
    let mut err = io::stderr().lock();
    for _ in 0..1024 {
        // Logs may be dropped or truncated by the engine; that must not stop the function.
        let _ = err.write_all(&chunk);
    }
    drop(err);
    respond(b"done")
}

/// A raw three-argument syscall, bypassing libc so the return value is the kernel's own.
fn raw_syscall3(nr: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // SAFETY: the callers pass syscalls that do not touch memory we own (unknown, or a write
    // from an unmapped address); rcx and r11 are clobbered by `syscall`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    ret
}

fn recurse(depth: u64) -> u64 {
    // A never-true exit keeps the unconditional_recursion lint quiet; black_box keeps a real
    // 512-byte frame per call so the stack actually grows.
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = black_box([depth; 64]);
    recurse(depth + 1).wrapping_add(black_box(frame)[63])
}

fn print_env() -> ExitCode {
    let mut text = String::new();
    for (key, value) in std::env::vars_os() {
        text.push_str(&format!(
            "{}={}\n",
            key.to_string_lossy(),
            value.to_string_lossy()
        ));
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    text.push_str(&format!("argv0={}\n", argv0.to_string_lossy()));
    respond(text.as_bytes())
}

/// Outside the Runtime API there is no network: each attempt should fail at once.
fn connect_elsewhere() -> ExitCode {
    let mut lines = String::new();
    for addr in ["127.0.0.1:80", "10.0.0.1:80", "[::1]:80"] {
        let outcome = match std::net::TcpStream::connect(addr) {
            Ok(_) => "connected".to_string(),
            Err(err) => format!("{:?}", err.kind()),
        };
        lines.push_str(&format!("{addr} {outcome}\n"));
    }
    respond(lines.as_bytes())
}

/// Threads need `clone`; the answer is printed rather than unwrapped.
fn spawn_thread() -> ExitCode {
    match std::thread::Builder::new().spawn(|| 7) {
        Ok(handle) => respond(format!("spawned {:?}", handle.join()).as_bytes()),
        Err(err) => respond(format!("error {:?}", err.kind()).as_bytes()),
    }
}

/// Syscalls the fuzzer leaves alone: they end the program (exit, kill, abort paths), wait
/// with no way to bound the wait (pause, sigsuspend, wait4), change its thread pointer, or
/// fork. Sleeps, polls, futexes, epoll and the memory-map calls are fuzzed with arguments
/// that keep the program alive (see `shaped_args`).
const FUZZ_SKIP: &[u64] = &[
    12, 15, 34, 56, 57, 58, 59, 60, 61, 62, 101, 130, 158, 200, 231, 234, 247, 435,
];

/// Calls whose arguments the fuzzer shapes so that the program survives them: waits get
/// timeouts that have already passed (or malformed ones), memory-map calls work only on the
/// fuzzer's own mappings or ask for fresh ones, `openat` opens writable files in `/tmp`.
fn shaped_args(nr: u64, next: &mut impl FnMut() -> u64, scratch: u64, own: &[u64]) -> Option<[u64; 6]> {
    // timespecs at the start of the scratch buffer: zero, a nanosecond, negative, bad nanos.
    let timespec = scratch + (next() % 4) * 16;
    let pick = next() as usize;
    let mapping = || own.get(pick % own.len().max(1)).copied().unwrap_or(0);
    let flags = next();
    Some(match nr {
        7 => [scratch + 4096, next() % 16, 0, 0, 0, 0],            // poll, timeout 0
        271 => [scratch + 4096, next() % 16, timespec, 0, 8, 0],   // ppoll
        23 => [next() % 8, scratch + 4096, 0, 0, timespec, 0],     // select
        270 => [next() % 8, scratch + 4096, 0, 0, timespec, 0],    // pselect6
        35 => [timespec, scratch + 8192, 0, 0, 0, 0],              // nanosleep
        230 => [next() % 12, next() % 2, timespec, 0, 0, 0],       // clock_nanosleep
        202 => [scratch + 4096, flags % 16, 0xdead, timespec, scratch, 0], // futex: value differs
        232 | 281 => [next() % 64, scratch + 8192, next() % 64, 0, 0, 0], // epoll_wait, timeout 0
        9 => [0, 4096 * (1 + next() % 64), next() % 8, 0x22 | (flags & 0x4_0100), u64::MAX, 0],
        10 | 28 | 11 => [mapping(), 4096 * (next() % 4), next() % 16, 0, 0, 0],
        25 => [mapping(), 4096, 4096 * (next() % 4), next() % 2, 0, 0],
        257 => [libc_at_fdcwd(), scratch + 12_288, 0o102 | (flags & 0o1000), 0o644, 0, 0],
        _ => return None,
    })
}

/// `AT_FDCWD` as a register holds it.
fn libc_at_fdcwd() -> u64 {
    -100i64 as u64
}

/// Throws random syscalls at the kernel: numbers 0-511, arguments that are small numbers,
/// pointers into a scratch buffer, pointers near nothing, or raw random words.
fn syscall_fuzz(arg: &str) -> ExitCode {
    let mut words = arg.split_whitespace();
    let seed: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let count: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(10_000);
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Lengths go up to 2 MiB and pointers into the first 64 KiB, so whatever the kernel
    // writes stays inside the scratch buffer and the fuzzer outlives its own calls.
    let mut scratch = vec![0u8; 4 * MIB];
    let base = scratch.as_mut_ptr() as u64;
    // Four timespecs: zero, one nanosecond, negative, nanoseconds out of range; a path.
    let times: [(i64, i64); 4] = [(0, 0), (0, 1), (-1, 0), (0, 1_000_000_000)];
    for (index, (secs, nanos)) in times.iter().enumerate() {
        scratch[index * 16..index * 16 + 8].copy_from_slice(&secs.to_le_bytes());
        scratch[index * 16 + 8..index * 16 + 16].copy_from_slice(&nanos.to_le_bytes());
    }
    scratch[12_288..12_288 + 15].copy_from_slice(b"/tmp/fuzz-file\0");
    // Whatever the calls write to standard output goes to a file; the real one is kept at a
    // high descriptor and put back at the end, so the response is only the summary.
    let saved = raw_syscall3(72, 1, 0, 1000); // fcntl(1, F_DUPFD, 1000)
    if let Ok(file) = std::fs::File::create("/tmp/fuzz-stdout") {
        use std::os::fd::AsRawFd;
        raw_syscall3(33, file.as_raw_fd() as u64, 1, 0); // dup2(file, 1)
    }
    let mut own: Vec<u64> = Vec::new();
    let mut done = 0;
    while done < count {
        let nr = next() % 512;
        if FUZZ_SKIP.contains(&nr) {
            continue;
        }
        let args = match shaped_args(nr, &mut next, base, &own) {
            Some(args) => args,
            None => {
                let mut args = [0u64; 6];
                for arg in &mut args {
                    *arg = match next() % 6 {
                        0 => next() % 8,
                        1 => next() % 4096,
                        2 => base + 16_384 + next() % 49_152,
                        3 => next() % 0x20_0000,
                        4 => u64::MAX - next() % 4096,
                        _ => next(),
                    };
                }
                args
            }
        };
        let ret = raw_syscall6(nr, args);
        if nr == 9 && ret > 0 && own.len() < 256 {
            own.push(ret as u64);
        }
        if nr == 11 || nr == 25 {
            // Gone or moved: never touched again (malloc may take the address).
            own.retain(|&mapping| mapping != args[0]);
        }
        done += 1;
    }
    black_box(&scratch);
    if saved >= 0 {
        raw_syscall3(33, saved as u64, 1, 0); // dup2(saved, 1)
    }
    respond(format!("survived {done}").as_bytes())
}

fn raw_syscall6(nr: u64, args: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: none in general: the fuzzer means to pass bad arguments. It skips the calls
    // that change this program's memory map, and the scratch buffer is the only memory the
    // kernel may legitimately write through its pointers.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    ret
}

/// Walks the filesystem calls a function uses, printing one line per step so a test can
/// compare the whole transcript.
fn files() -> ExitCode {
    use std::fs;
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let mut out = String::new();
    let mut step = |name: &str, result: io::Result<String>| {
        let text = match result {
            Ok(text) => text,
            Err(err) => format!("error {:?}", err.kind()),
        };
        out.push_str(&format!("{name}: {text}\n"));
    };
    step(
        "write",
        fs::write("/tmp/a.txt", "hello world").map(|()| "ok".into()),
    );
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/tmp/a.txt");
    step(
        "pwrite",
        file.as_ref()
            .map_err(|e| io::Error::new(e.kind(), ""))
            .and_then(|f| f.write_at(b"HELLO", 0))
            .map(|n| n.to_string()),
    );
    step(
        "pread",
        file.as_ref()
            .map_err(|e| io::Error::new(e.kind(), ""))
            .and_then(|f| {
                let mut buf = [0u8; 5];
                f.read_at(&mut buf, 6)?;
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }),
    );
    step(
        "seek-read",
        file.and_then(|mut f| {
            f.seek(SeekFrom::Start(0))?;
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            Ok(text)
        }),
    );
    step("mkdir", fs::create_dir("/tmp/d").map(|()| "ok".into()));
    step(
        "rename",
        fs::rename("/tmp/a.txt", "/tmp/d/b.txt").map(|()| "ok".into()),
    );
    step(
        "list",
        fs::read_dir("/tmp/d").and_then(|entries| {
            let mut names = entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<io::Result<Vec<_>>>()?;
            names.sort();
            Ok(names.join(","))
        }),
    );
    step(
        "size",
        fs::metadata("/tmp/d/b.txt").map(|m| m.len().to_string()),
    );
    step(
        "unlink",
        fs::remove_file("/tmp/d/b.txt").map(|()| "ok".into()),
    );
    step("rmdir", fs::remove_dir("/tmp/d").map(|()| "ok".into()));
    step(
        "task-read",
        fs::read("/var/task/bootstrap").map(|b| (b.len() > 1000).to_string()),
    );
    step(
        "task-write",
        fs::write("/var/task/new", "x").map(|()| "ok".into()),
    );
    step(
        "outside",
        fs::read("/etc/passwd").map(|b| b.len().to_string()),
    );
    step(
        "cwd",
        std::env::current_dir().map(|d| d.display().to_string()),
    );
    respond(out.as_bytes())
}

// A `movabs rax, imm64` that is never executed: its immediate begins with `0f 05 c3`, the
// bytes of `syscall; ret`, at `forge_site`. Decoded from the start, the program holds no
// syscall instruction there.
std::arch::global_asm!(
    ".pushsection .text.forge_gadget,\"ax\",@progbits",
    ".globl forge_gadget",
    "forge_gadget:",
    ".byte 0x48, 0xb8",
    ".byte 0x0f, 0x05, 0xc3, 0x90, 0x90, 0x90, 0x90, 0x90",
    ".popsection",
);

unsafe extern "C" {
    static forge_gadget: [u8; 10];
}

fn gadget() -> u64 {
    // Only the address of the linker-defined bytes is taken.
    std::ptr::addr_of!(forge_gadget) as u64
}

fn code_bytes() -> ExitCode {
    // SAFETY: the gadget's 10 bytes are in the program's text, which is readable.
    let bytes = unsafe { std::ptr::read_volatile(std::ptr::addr_of!(forge_gadget)) };
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    respond(hex.as_bytes())
}

fn forge_sites() -> ExitCode {
    let site = gadget() + 2;
    let pid: u64;
    // Into the middle of the `movabs`: executes `syscall; ret` (getpid).
    // SAFETY: the bytes at `site` are `syscall; ret`; rcx and r11 are clobbered by syscall.
    unsafe {
        asm!("call {site}", site = in(reg) site, inlateout("rax") 39u64 => pid,
             out("rcx") _, out("r11") _, clobber_abi("C"));
    }
    if pid != 1 {
        eprintln!("misbehave: getpid through the gadget answered {pid}");
        return ExitCode::FAILURE;
    }
    // Straight to the ring-0 stub (lambda-vmm's kernel area maps it at 0x7fff_ffe0_6000),
    // claiming to return to just after `site`'s bytes: a kernel that trusted rcx would take
    // `site` for a syscall instruction.
    let pid: u64;
    // SAFETY: the stub exits to the VMM, which returns to rcx (the gadget's `ret`), which
    // returns to label 2 pushed below; rcx and r11 are clobbered.
    unsafe {
        asm!(
            "lea rdx, [rip + 2f]",
            "push rdx",
            "mov rcx, rsi",
            "mov r11, 0x202",
            "jmp rdi",
            "2:",
            in("rsi") site + 2,
            in("rdi") 0x7fff_ffe0_6000u64,
            inlateout("rax") 39u64 => pid,
            out("rcx") _, out("r11") _, out("rdx") _,
            clobber_abi("C"),
        );
    }
    if pid != 1 {
        eprintln!("misbehave: getpid through the stub answered {pid}");
        return ExitCode::FAILURE;
    }
    respond(b"forged")
}
