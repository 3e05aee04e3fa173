//! `hoard`: after posting its response, the runtime asks the environment's kernel for every
//! kind of state it keeps on the guest's behalf, as much as it will give: Runtime API
//! connections holding unfinished 6 MB requests, epoll registrations, `/tmp` entries with
//! long names, separate memory mappings. It holds all of it until its next event, so the
//! host can measure what that costs it.

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
    let targets: Vec<i64> = (0..64).map(|_| syscall4(290, 0, 0, 0, 0)).filter(|fd| *fd >= 0).collect();
    let interest = [1u32.to_le_bytes(), [0; 4], [0; 4]].concat();
    let mut watches = 0;
    'epolls: for _ in 0..512 {
        let epoll = syscall4(291, 0, 0, 0, 0);
        if epoll < 0 {
            break;
        }
        for &target in &targets {
            if syscall4(233, epoll as u64, 1, target as u64, interest.as_ptr() as u64) < 0 {
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
    format!(
        "hoarded: {connections} connections with {sent} bytes sent, {watches} epoll \
         registrations, {entries} /tmp entries, {mappings} mappings"
    )
}
