//! `hoard`: after posting its response, the runtime asks the environment's kernel for every
//! kind of state it keeps on the guest's behalf, as much as it will give: Runtime API
//! connections holding unfinished 6 MB requests, epoll registrations, `/tmp` entries with
//! long names, separate memory mappings, threads up to the limit with real-time signals
//! queued on each, pipes filled to their bound. It holds all of it until its next event (the
//! threads for good), so the host can measure what that costs it.

use std::arch::asm;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Mutex;

/// The connections held until the next event.
static HELD: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());

fn syscall4(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: the calls made here (epoll_create1, eventfd2, epoll_ctl, mmap of fresh
    // anonymous memory) touch no memory this program relies on; rcx and r11 are clobbered.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, in("r10") a3, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

fn mmap_fixed(addr: u64) -> i64 {
    let ret: i64;
    // SAFETY: maps one fresh anonymous page at an address inside the mmap area that nothing
    // of this program uses (MAP_FIXED_NOREPLACE refuses anything already mapped).
    unsafe {
        asm!("syscall", inlateout("rax") 9i64 => ret, in("rdi") addr, in("rsi") 4096u64,
             in("rdx") 3u64, in("r10") 0x10_0022u64, in("r8") u64::MAX, in("r9") 0u64,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

fn syscall3(nr: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    syscall4(nr, a0, a1, a2, 0)
}

/// Thread ids of the parked threads.
static TIDS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Threads, as many as the kernel gives, parked for good on small stacks, with the real-time
/// signals blocked (the mask is inherited) and as many queued on each as it takes. Returns
/// (threads, pending signals).
fn hoard_threads() -> (usize, usize) {
    // Block SIGRTMIN..SIGRTMAX (34..64): rt_sigprocmask(SIG_BLOCK, set, NULL, 8).
    let set: u64 = !((1u64 << 33) - 1);
    syscall4(14, 0, &set as *const u64 as u64, 0, 8);
    let mut threads = 0;
    for _ in 0..2000 {
        let spawned = std::thread::Builder::new().stack_size(16 * 1024).spawn(|| {
            let tid = syscall3(186, 0, 0, 0) as u64;
            if let Ok(mut tids) = TIDS.lock() {
                tids.push(tid);
            }
            loop {
                std::thread::park();
            }
        });
        if spawned.is_err() {
            break;
        }
        threads += 1;
    }
    while TIDS.lock().map_or(threads, |tids| tids.len()) < threads {
        std::thread::yield_now();
    }
    let pid = syscall3(39, 0, 0, 0) as u64;
    let tids = TIDS.lock().map(|tids| tids.clone()).unwrap_or_default();
    let mut pending = 0;
    for tid in tids {
        for signal in (34..=64).cycle().take(1000) {
            if syscall3(234, pid, tid, signal) < 0 {
                break;
            }
            pending += 1;
        }
    }
    (threads, pending)
}

/// Pipes, each filled to 64 KiB, until the kernel's bound on pipe bytes or descriptors;
/// returns (pipes, bytes held).
fn hoard_pipes() -> (usize, usize) {
    let chunk = vec![b'p'; 64 * 1024];
    let (mut pipes, mut bytes) = (0, 0);
    for _ in 0..1000 {
        let mut fds = [0i32; 2];
        // pipe2(fds, O_NONBLOCK)
        if syscall3(293, fds.as_mut_ptr() as u64, 0o4000, 0) < 0 {
            break;
        }
        pipes += 1;
        let written = syscall3(1, fds[1] as u64, chunk.as_ptr() as u64, chunk.len() as u64);
        if written <= 0 {
            break;
        }
        bytes += written as usize;
    }
    (pipes, bytes)
}

/// Lets go of the held connections (the rest stays: it is bounded and harmless).
pub fn release() {
    if let Ok(mut held) = HELD.lock() {
        held.clear();
    }
}

/// Takes all it can; returns a summary line for the log.
pub fn hoard() -> String {
    // Connections, each with a 6 MB response started and left unfinished, up to 15 MB in all:
    // the Runtime API holds 16 MiB at most, and the runtime's own `next` must still get through.
    let head = b"POST /2018-06-01/runtime/invocation/hoard/response HTTP/1.1\r\n\
                 Content-Length: 6291456\r\n\r\n";
    let chunk = vec![b'h'; 64 * 1024];
    let mut connections = 0;
    let mut sent = 0usize;
    for _ in 0..1000 {
        let Ok(mut stream) = TcpStream::connect("127.0.0.1:9001") else {
            break;
        };
        connections += 1;
        let _ = stream.set_nonblocking(true);
        if stream.write_all(head).is_ok() {
            while sent < 15 << 20 {
                match stream.write(&chunk) {
                    Ok(n) if n > 0 => sent += n,
                    _ => break,
                }
            }
        }
        if let Ok(mut held) = HELD.lock() {
            held.push(stream);
        }
    }
    // Epoll registrations: eventfds watched by as many epoll instances as it takes.
    let targets: Vec<i64> = (0..64)
        .map(|_| syscall4(290, 0, 0, 0, 0))
        .filter(|fd| *fd >= 0)
        .collect();
    let interest = [1u32.to_le_bytes(), [0; 4], [0; 4]].concat();
    let mut watches = 0;
    'epolls: for _ in 0..512 {
        let epoll = syscall4(291, 0, 0, 0, 0);
        if epoll < 0 {
            break;
        }
        for &target in &targets {
            if syscall4(
                233,
                epoll as u64,
                1,
                target as u64,
                interest.as_ptr() as u64,
            ) < 0
            {
                break 'epolls;
            }
            watches += 1;
        }
    }
    // /tmp entries with the longest names Linux allows.
    let long = "n".repeat(240);
    let mut entries = 0;
    for index in 0..20_000 {
        if std::fs::File::create(format!("/tmp/{index:08}{long}")).is_err() {
            break;
        }
        entries += 1;
    }
    // Separate mappings: one page in every two, from 96 MB down to 40 MB (inside a 128 MB
    // function's mmap area, below what malloc took from its top).
    let mut mappings = 0;
    let mut addr: u64 = 96 << 20;
    while addr > 40 << 20 && mmap_fixed(addr) >= 0 {
        mappings += 1;
        addr -= 8192;
    }
    let (threads, pending) = hoard_threads();
    let (pipes, piped) = hoard_pipes();
    format!(
        "hoarded: {connections} connections with {sent} bytes sent, {watches} epoll \
         registrations, {entries} /tmp entries, {mappings} mappings, {threads} threads with \
         {pending} pending signals, {pipes} pipes holding {piped} bytes"
    )
}
