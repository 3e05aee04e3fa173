//! The syscall table: every syscall this kernel answers, with its number, its name, its
//! handler and how far it follows Linux. The dispatcher reads it, and `docs/syscalls.md` is
//! generated from it (a test fails when the document is stale). A number not in the table
//! answers `ENOSYS` and is counted, and the log names it.

use super::{Errno, Kernel, SysResult, mm, poll, process};
use crate::mm::GuestMemory;

/// The six argument registers of a syscall: `rdi, rsi, rdx, r10, r8, r9`.
pub(super) type Args = [u64; 6];

/// A syscall's implementation.
type Handler = fn(&mut Kernel, &GuestMemory, Args) -> SysResult;

/// How far a syscall follows Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// As Linux does it, in this environment.
    Full,
    /// Implemented; the note says what is missing or differs.
    Partial(&'static str),
    /// Always answered with this errno; the note says why.
    Refused(i32, &'static str),
}

/// One row of the table.
#[derive(Debug)]
pub struct Syscall {
    /// The x86-64 syscall number.
    pub number: u64,
    /// Linux's name for it (the log names unknown numbers from `names.rs`; this one is
    /// checked against it and printed in `docs/syscalls.md`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub name: &'static str,
    /// How far it follows Linux.
    pub support: Support,
    handler: Option<Handler>,
}

impl Syscall {
    const fn new(number: u64, name: &'static str, support: Support, handler: Handler) -> Self {
        Syscall {
            number,
            name,
            support,
            handler: Some(handler),
        }
    }

    const fn refused(number: u64, name: &'static str, errno: i32, why: &'static str) -> Self {
        Syscall {
            number,
            name,
            support: Support::Refused(errno, why),
            handler: None,
        }
    }

    /// Runs the call.
    pub(super) fn call(&self, kernel: &mut Kernel, memory: &GuestMemory, args: Args) -> SysResult {
        match (self.handler, self.support) {
            (Some(handler), _) => handler(kernel, memory, args),
            (None, Support::Refused(errno, _)) => Err(Errno(errno)),
            (None, _) => Err(Errno(libc::ENOSYS)),
        }
    }
}

/// `AT_FDCWD` as the guest passes it.
const CWD: u64 = libc::AT_FDCWD as i64 as u64;

use Support::{Full, Partial};

/// Every syscall this kernel answers, by number.
pub static TABLE: &[Syscall] = &[
    Syscall::new(0, "read", Full, |k, m, a| k.read(m, a[0], a[1], a[2])),
    Syscall::new(1, "write", Full, |k, m, a| k.write(m, a[0], a[1], a[2])),
    Syscall::new(2, "open", Partial("see openat"), |k, m, a| {
        k.openat(m, CWD, a[0], a[1])
    }),
    Syscall::new(3, "close", Full, |k, _, a| k.close(a[0])),
    Syscall::new(4, "stat", Partial("see newfstatat"), |k, m, a| {
        k.stat_path(m, CWD, a[0], a[1], 0)
    }),
    Syscall::new(5, "fstat", Partial("see newfstatat"), |k, m, a| {
        k.fstat(m, a[0], a[1])
    }),
    Syscall::new(
        6,
        "lstat",
        Partial("see newfstatat; there are no symbolic links"),
        |k, m, a| k.stat_path(m, CWD, a[0], a[1], 0),
    ),
    Syscall::new(7, "poll", Full, |k, m, a| {
        k.poll(m, a[0], a[1], poll::millis_timeout(a[2]))
    }),
    Syscall::new(
        8,
        "lseek",
        Partial("SEEK_DATA and SEEK_HOLE answer EINVAL"),
        |k, _, a| k.lseek(a[0], a[1], a[2]),
    ),
    Syscall::new(
        9,
        "mmap",
        Partial(
            "a base image's file pages are shared copy-on-write, other files copied in; a \
             writable MAP_SHARED file mapping answers EACCES or ENODEV; no MAP_HUGETLB pool \
             (ENOMEM)",
        ),
        |k, m, a| k.mmap(m, a[0], a[1], a[2], a[3], a[4], a[5]),
    ),
    Syscall::new(10, "mprotect", Full, |_, m, a| {
        mm::mprotect(m, a[0], a[1], a[2])
    }),
    Syscall::new(11, "munmap", Full, |_, m, a| mm::munmap(m, a[0], a[1])),
    Syscall::new(12, "brk", Full, |_, m, a| mm::brk(m, a[0])),
    Syscall::new(13, "rt_sigaction", Full, |k, m, a| {
        k.rt_sigaction(m, a[0], a[1], a[2], a[3])
    }),
    Syscall::new(14, "rt_sigprocmask", Full, |k, m, a| {
        k.rt_sigprocmask(m, a[0], a[1], a[2], a[3])
    }),
    Syscall::new(
        15,
        "rt_sigreturn",
        Partial(
            "general registers, flags, the XSAVE state, the mask and the alternate stack are restored from the frame; segment registers are not",
        ),
        |k, _, _| k.rt_sigreturn(),
    ),
    Syscall::new(
        16,
        "ioctl",
        Partial("FIONBIO only; anything else answers ENOTTY"),
        |k, m, a| k.ioctl(m, a[0], a[1], a[2]),
    ),
    Syscall::new(17, "pread64", Full, |k, m, a| {
        k.pread(m, a[0], a[1], a[2], a[3])
    }),
    Syscall::new(18, "pwrite64", Full, |k, m, a| {
        k.pwrite(m, a[0], a[1], a[2], a[3])
    }),
    Syscall::new(19, "readv", Full, |k, m, a| k.readv(m, a[0], a[1], a[2])),
    Syscall::new(20, "writev", Full, |k, m, a| k.writev(m, a[0], a[1], a[2])),
    Syscall::new(21, "access", Partial("see faccessat"), |k, m, a| {
        k.faccessat(m, CWD, a[0], a[1])
    }),
    Syscall::new(22, "pipe", Partial("see pipe2"), |k, m, a| {
        k.pipe2(m, a[0], 0)
    }),
    Syscall::new(24, "sched_yield", Full, |k, _, _| k.sched_yield()),
    Syscall::new(
        25,
        "mremap",
        Partial(
            "anonymous mappings; a move copies the pages in use; MREMAP_DONTUNMAP answers EINVAL",
        ),
        |_, m, a| mm::mremap(m, a[0], a[1], a[2], a[3], a[4]),
    ),
    Syscall::new(
        27,
        "mincore",
        Partial("every page of a mapped range reads as resident (nothing is swapped out)"),
        |_, m, a| mm::mincore(m, a[0], a[1], a[2]),
    ),
    Syscall::new(
        28,
        "madvise",
        Partial(
            "MADV_DONTNEED and MADV_FREE drop anonymous pages (they read as zero next time); for the program image, and for every other advice, it is a hint",
        ),
        |_, m, a| mm::madvise(m, a[0], a[1], a[2]),
    ),
    Syscall::new(32, "dup", Full, |k, _, a| k.dup(a[0], 0)),
    Syscall::new(33, "dup2", Full, |k, _, a| k.dup2(a[0], a[1])),
    Syscall::new(34, "pause", Full, |k, _, _| k.pause()),
    Syscall::new(35, "nanosleep", Full, |k, m, a| k.nanosleep(m, a[0])),
    Syscall::new(39, "getpid", Full, |k, _, _| Ok(u64::from(k.pid()))),
    Syscall::new(
        41,
        "socket",
        Partial("AF_INET and AF_INET6 stream sockets only"),
        |k, _, a| k.socket(a[0], a[1]),
    ),
    Syscall::new(
        42,
        "connect",
        Partial(
            "only the Runtime API at 127.0.0.1:9001 answers; other loopback ports ECONNREFUSED, anything else ENETUNREACH",
        ),
        |k, m, a| k.connect(m, a[0], a[1], a[2]),
    ),
    Syscall::refused(
        43,
        "accept",
        libc::EOPNOTSUPP,
        "no socket listens inside the environment",
    ),
    Syscall::new(
        44,
        "sendto",
        Partial(
            "on a connected stream the address is ignored, as Linux does; flags other than MSG_DONTWAIT and MSG_NOSIGNAL answer EOPNOTSUPP",
        ),
        |k, m, a| k.sendto(m, a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(
        45,
        "recvfrom",
        Partial("flags other than MSG_PEEK, MSG_DONTWAIT and MSG_NOSIGNAL answer EOPNOTSUPP"),
        |k, m, a| k.recvfrom(m, a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(
        46,
        "sendmsg",
        Partial("no ancillary data; flags as sendto"),
        |k, m, a| k.sendmsg(m, a[0], a[1], a[2]),
    ),
    Syscall::new(
        47,
        "recvmsg",
        Partial("no ancillary data; flags as recvfrom"),
        |k, m, a| k.recvmsg(m, a[0], a[1], a[2]),
    ),
    Syscall::new(48, "shutdown", Full, |k, _, a| k.shutdown(a[0], a[1])),
    Syscall::refused(
        49,
        "bind",
        libc::EOPNOTSUPP,
        "no server runs inside the environment",
    ),
    Syscall::refused(
        50,
        "listen",
        libc::EOPNOTSUPP,
        "no server runs inside the environment",
    ),
    Syscall::new(51, "getsockname", Full, |k, m, a| {
        k.getsockname(m, a[0], a[1], a[2], false)
    }),
    Syscall::new(52, "getpeername", Full, |k, m, a| {
        k.getsockname(m, a[0], a[1], a[2], true)
    }),
    Syscall::new(
        53,
        "socketpair",
        Partial(
            "AF_UNIX SOCK_STREAM pairs (pipes both ways, with the limits of pipe2); other types answer EOPNOTSUPP",
        ),
        |k, m, a| k.socketpair(m, a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(
        54,
        "setsockopt",
        Partial("accepted without effect"),
        |_, _, _| Ok(0),
    ),
    Syscall::new(
        55,
        "getsockopt",
        Partial("SO_ERROR and SO_TYPE; any other option reads 0"),
        |k, m, a| k.getsockopt(m, a[0], a[1], a[2], a[3], a[4]),
    ),
    Syscall::new(
        56,
        "clone",
        Partial(
            "threads (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD, with SETTLS and the tid words), at most MAX_THREADS (1,024), then EAGAIN; a new process (see fork), CLONE_VM only with CLONE_VFORK (else EINVAL)",
        ),
        |k, m, a| k.clone_thread(m, a[0], a[1], a[2], a[3], a[4]),
    ),
    Syscall::new(
        57,
        "fork",
        Partial(
            "the parent waits, all its threads stopped, until the child exits or is killed, then gets its pid: processes run one at a time, never side by side; the child has a copy of the memory, descriptors, signal actions; at most MAX_PROCESSES (16) at once, then EAGAIN",
        ),
        |k, m, _| k.fork(m),
    ),
    Syscall::new(
        58,
        "vfork",
        Partial("see fork; the child shares the parent's memory until it execs or ends"),
        |k, m, _| k.vfork(m),
    ),
    Syscall::new(
        59,
        "execve",
        Partial(
            "replaces the program in the same environment: ELF programs (static, static-pie or dynamic, with their interpreter) and #! scripts (5 deep, else ELOOP) from /var/task, /opt and the base image; /tmp files are not executable (EACCES); other threads end, descriptors with FD_CLOEXEC close, handled signals reset; E2BIG past 128 KiB per string or 2 MiB in all",
        ),
        |k, m, a| k.execve(m, a[0], a[1], a[2]),
    ),
    Syscall::new(60, "exit", Full, |k, m, a| k.exit_thread(m, a[0])),
    Syscall::new(
        61,
        "wait4",
        Partial(
            "reaps an ended child (every child has ended by the time its parent runs, so it never waits); ECHILD with none; resource usage reads zero",
        ),
        |k, m, a| k.wait4(m, a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(
        62,
        "kill",
        Partial(
            "to the running process (its pid, 0 or -1): to a thread that does not block the signal; an unreaped child ignores it; a waiting parent cannot be signalled (ESRCH); the default stop actions do nothing (no job control)",
        ),
        |k, _, a| k.kill(a[0], a[1]),
    ),
    Syscall::new(63, "uname", Full, |_, m, a| process::uname(m, a[0])),
    Syscall::new(
        72,
        "fcntl",
        Partial(
            "F_GETFD, F_SETFD, F_GETFL, F_SETFL (O_NONBLOCK), F_DUPFD, F_DUPFD_CLOEXEC; locks and the rest answer EINVAL",
        ),
        |k, _, a| k.fcntl(a[0], a[1], a[2]),
    ),
    Syscall::new(74, "fsync", Full, |k, _, a| k.fds.get(a[0]).map(|_| 0)),
    Syscall::new(75, "fdatasync", Full, |k, _, a| k.fds.get(a[0]).map(|_| 0)),
    Syscall::new(77, "ftruncate", Full, |k, _, a| k.ftruncate(a[0], a[1])),
    Syscall::new(79, "getcwd", Full, |k, m, a| k.getcwd(m, a[0], a[1])),
    Syscall::new(80, "chdir", Full, |k, m, a| k.chdir(m, a[0])),
    Syscall::new(
        81,
        "fchdir",
        Partial(
            "into a removed directory too; paths relative to it, `..` included, then answer ENOENT (Linux follows `..`)",
        ),
        |k, _, a| k.fchdir(a[0]),
    ),
    Syscall::new(82, "rename", Partial("see renameat2"), |k, m, a| {
        k.renameat(m, CWD, a[0], CWD, a[1], 0)
    }),
    Syscall::new(83, "mkdir", Full, |k, m, a| k.mkdirat(m, CWD, a[0])),
    Syscall::new(84, "rmdir", Full, |k, m, a| {
        k.unlinkat(m, CWD, a[0], libc::AT_REMOVEDIR as u64)
    }),
    Syscall::new(87, "unlink", Full, |k, m, a| k.unlinkat(m, CWD, a[0], 0)),
    Syscall::new(89, "readlink", Partial("see readlinkat"), |k, m, a| {
        k.readlinkat(m, CWD, a[0], a[1], a[2])
    }),
    Syscall::new(
        95,
        "umask",
        Partial("kept and returned per process; files keep no modes, so it changes nothing else"),
        |k, _, a| k.umask(a[0]),
    ),
    Syscall::new(96, "gettimeofday", Full, |k, m, a| {
        k.clock.gettimeofday(m, a[0])
    }),
    Syscall::new(
        97,
        "getrlimit",
        Partial("the limits the environment enforces; the rest read as unlimited"),
        |_, m, a| process::getrlimit(m, a[0], a[1]),
    ),
    Syscall::new(
        98,
        "getrusage",
        Partial("reads as zeros: CPU time is not accounted per program"),
        |_, m, a| process::getrusage(m, a[1]),
    ),
    Syscall::new(
        99,
        "sysinfo",
        Partial("total memory is the function's memory size; the rest reads 0"),
        |_, m, a| process::sysinfo(m, a[0]),
    ),
    Syscall::new(102, "getuid", Full, |_, _, _| Ok(0)),
    Syscall::new(104, "getgid", Full, |_, _, _| Ok(0)),
    Syscall::new(107, "geteuid", Full, |_, _, _| Ok(0)),
    Syscall::new(108, "getegid", Full, |_, _, _| Ok(0)),
    Syscall::new(110, "getppid", Full, |k, _, _| k.getppid()),
    Syscall::new(
        111,
        "getpgrp",
        Partial("every process is in the first one's group (1): there is no job control"),
        |_, _, _| Ok(1),
    ),
    Syscall::new(127, "rt_sigpending", Full, |k, m, a| {
        k.rt_sigpending(m, a[0], a[1])
    }),
    Syscall::new(128, "rt_sigtimedwait", Full, |k, m, a| {
        k.rt_sigtimedwait(m, a[0], a[1], a[2], a[3])
    }),
    Syscall::new(130, "rt_sigsuspend", Full, |k, m, a| {
        k.rt_sigsuspend(m, a[0], a[1])
    }),
    Syscall::new(131, "sigaltstack", Full, |k, m, a| {
        let sp = k.user_sp;
        k.sigaltstack(m, a[0], a[1], sp)
    }),
    Syscall::new(
        137,
        "statfs",
        Partial(
            "/tmp is a tmpfs of the ephemeral storage (its size and what is free); every other path is on a read-only file system reporting no space",
        ),
        |k, m, a| k.statfs(m, a[0], a[1]),
    ),
    Syscall::new(138, "fstatfs", Partial("see statfs"), |k, m, a| {
        k.fstatfs(m, a[0], a[1])
    }),
    Syscall::new(140, "getpriority", Full, |k, _, a| {
        k.getpriority(a[0], a[1])
    }),
    Syscall::new(
        141,
        "setpriority",
        Partial("unprivileged: a lower nice value answers EACCES"),
        |k, _, a| k.setpriority(a[0], a[1], a[2]),
    ),
    Syscall::new(142, "sched_setparam", Full, |k, m, a| {
        k.sched_setparam(m, a[0], a[1])
    }),
    Syscall::new(143, "sched_getparam", Full, |k, m, a| {
        k.sched_getparam(m, a[0], a[1])
    }),
    Syscall::new(
        144,
        "sched_setscheduler",
        Partial(
            "SCHED_OTHER, SCHED_BATCH, SCHED_IDLE; the real-time policies answer EPERM (unprivileged)",
        ),
        |k, m, a| k.sched_setscheduler(m, a[0], a[1], a[2]),
    ),
    Syscall::new(145, "sched_getscheduler", Full, |k, _, a| {
        k.sched_getscheduler(a[0])
    }),
    Syscall::new(146, "sched_get_priority_max", Full, |k, _, a| {
        k.sched_get_priority_max(a[0])
    }),
    Syscall::new(147, "sched_get_priority_min", Full, |k, _, a| {
        k.sched_get_priority_min(a[0])
    }),
    Syscall::new(
        157,
        "prctl",
        Partial(
            "thread names (PR_SET_NAME, PR_GET_NAME); PDEATHSIG, DUMPABLE and NO_NEW_PRIVS read and set without effect; any other option answers EINVAL",
        ),
        |k, m, a| k.prctl(m, a[0], a[1]),
    ),
    Syscall::new(
        158,
        "arch_prctl",
        Partial("ARCH_SET_FS only; the GS base answers EINVAL"),
        |k, _, a| k.arch_prctl(a[0], a[1]),
    ),
    Syscall::new(186, "gettid", Full, |k, _, _| k.gettid()),
    Syscall::new(200, "tkill", Partial("see kill"), |k, _, a| {
        k.tkill(a[0], a[1])
    }),
    Syscall::new(201, "time", Full, |k, m, a| k.clock.time(m, a[0])),
    Syscall::new(
        202,
        "futex",
        Partial(
            "WAIT, WAKE, their BITSET forms, REQUEUE, CMP_REQUEUE and WAKE_OP; priority-inheritance operations answer ENOSYS",
        ),
        |k, m, a| k.futex(m, a[0], a[1], a[2], a[3], a[4], a[5]),
    ),
    Syscall::new(
        203,
        "sched_setaffinity",
        Partial(
            "a mask holding one of the environment's vCPUs is accepted and binds nothing: any thread runs on any vCPU",
        ),
        |k, m, a| k.sched_setaffinity(m, a[0], a[1], a[2]),
    ),
    Syscall::new(
        204,
        "sched_getaffinity",
        Partial("the environment's vCPUs: one per 1,769 MB of memory, at most 6"),
        |k, m, a| k.sched_getaffinity(m, a[0], a[1], a[2]),
    ),
    Syscall::new(213, "epoll_create", Full, |k, _, a| k.epoll_create(a[0])),
    Syscall::new(217, "getdents64", Full, |k, m, a| {
        k.getdents64(m, a[0], a[1], a[2])
    }),
    Syscall::new(218, "set_tid_address", Full, |k, _, a| {
        k.set_tid_address(a[0])
    }),
    Syscall::new(
        221,
        "fadvise64",
        Partial("checked and taken as the hint it is: ESPIPE for pipes and sockets"),
        |k, _, a| k.fadvise64(a[0], a[3]),
    ),
    Syscall::new(228, "clock_gettime", Full, |k, m, a| {
        k.clock.clock_gettime(m, a[0], a[1])
    }),
    Syscall::new(229, "clock_getres", Full, |k, m, a| {
        k.clock.clock_getres(m, a[0], a[1])
    }),
    Syscall::new(230, "clock_nanosleep", Full, |k, m, a| {
        k.clock_nanosleep(m, a[0], a[1], a[2])
    }),
    Syscall::new(231, "exit_group", Full, |k, _, a| k.exit(a[0])),
    Syscall::new(232, "epoll_wait", Full, |k, m, a| {
        k.epoll_wait(m, a[0], a[1], a[2], poll::millis_timeout(a[3]))
    }),
    Syscall::new(
        233,
        "epoll_ctl",
        Partial(
            "sockets, eventfds, pipes and stdin/stdout/stderr; regular files answer EPERM as on \
             Linux",
        ),
        |k, m, a| k.epoll_ctl(m, a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(234, "tgkill", Partial("see kill"), |k, _, a| {
        k.tgkill(a[0], a[1], a[2])
    }),
    Syscall::new(
        247,
        "waitid",
        Partial(
            "see wait4; P_ALL, P_PID and P_PGID (every child is in the one group), WNOWAIT leaves the child to reap",
        ),
        |k, m, a| k.waitid(m, a[0], a[1], a[2], a[3], a[4]),
    ),
    Syscall::new(
        257,
        "openat",
        Partial(
            "/var/task, /opt (layers) and a base image read-only, /tmp writable; O_PATH, \
             O_NOFOLLOW and modes are ignored; O_TMPFILE makes an unnamed file in /tmp (it \
             cannot be linked in later), EOPNOTSUPP elsewhere",
        ),
        |k, m, a| k.openat(m, a[0], a[1], a[2]),
    ),
    Syscall::new(258, "mkdirat", Full, |k, m, a| k.mkdirat(m, a[0], a[1])),
    Syscall::new(
        262,
        "newfstatat",
        Partial(
            "modes are 0755 for code, directories and executable image files, 0644 for other \
             files; one link, owner root, no times",
        ),
        |k, m, a| k.stat_path(m, a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(263, "unlinkat", Full, |k, m, a| {
        k.unlinkat(m, a[0], a[1], a[2])
    }),
    Syscall::new(264, "renameat", Partial("see renameat2"), |k, m, a| {
        k.renameat(m, a[0], a[1], a[2], a[3], 0)
    }),
    Syscall::new(
        267,
        "readlinkat",
        Partial("/proc/self/exe names the program; the base image's links are read as stored"),
        |k, m, a| k.readlinkat(m, a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(
        269,
        "faccessat",
        Partial("existence, and W_OK refused with EROFS on read-only code; the caller is root"),
        |k, m, a| k.faccessat(m, a[0], a[1], a[2]),
    ),
    Syscall::new(
        271,
        "ppoll",
        Partial("the signal mask is ignored (no signal is ever delivered)"),
        |k, m, a| k.ppoll(m, a[0], a[1], a[2]),
    ),
    Syscall::new(273, "set_robust_list", Full, |k, _, a| {
        k.set_robust_list(a[0], a[1])
    }),
    Syscall::new(274, "get_robust_list", Full, |k, m, a| {
        k.get_robust_list(m, a[0], a[1], a[2])
    }),
    Syscall::new(
        281,
        "epoll_pwait",
        Partial("the signal mask is ignored (no signal is ever delivered)"),
        |k, m, a| k.epoll_wait(m, a[0], a[1], a[2], poll::millis_timeout(a[3])),
    ),
    Syscall::new(284, "eventfd", Full, |k, _, a| k.eventfd(a[0], 0)),
    Syscall::refused(
        288,
        "accept4",
        libc::EOPNOTSUPP,
        "no socket listens inside the environment",
    ),
    Syscall::new(290, "eventfd2", Full, |k, _, a| k.eventfd(a[0], a[1])),
    Syscall::new(291, "epoll_create1", Full, |k, _, a| k.epoll_create1(a[0])),
    Syscall::new(292, "dup3", Full, |k, _, a| k.dup3(a[0], a[1], a[2])),
    Syscall::new(
        293,
        "pipe2",
        Partial(
            "O_NONBLOCK and O_CLOEXEC (O_DIRECT answers EINVAL); 64 KiB per pipe, 4 MiB in all pipes together; a write with no reader answers EPIPE and raises SIGPIPE",
        ),
        |k, m, a| k.pipe2(m, a[0], a[1]),
    ),
    Syscall::new(
        302,
        "prlimit64",
        Partial("reads the limits of getrlimit; setting a limit answers EPERM"),
        |k, m, a| process::prlimit64(m, k.pid(), a[0], a[1], a[2], a[3]),
    ),
    Syscall::new(
        316,
        "renameat2",
        Partial(
            "within /tmp; RENAME_NOREPLACE and RENAME_EXCHANGE honoured, RENAME_WHITEOUT answers EINVAL",
        ),
        |k, m, a| k.renameat(m, a[0], a[1], a[2], a[3], a[4]),
    ),
    Syscall::new(318, "getrandom", Full, |_, m, a| {
        process::getrandom(m, a[0], a[1], a[2])
    }),
    Syscall::new(
        322,
        "execveat",
        Partial("see execve; AT_EMPTY_PATH runs the file open at dirfd (fexecve)"),
        |k, m, a| k.execveat(m, a[0], a[1], a[2], a[3], a[4]),
    ),
    Syscall::new(
        324,
        "membarrier",
        Partial(
            "with one vCPU: QUERY, GLOBAL, PRIVATE_EXPEDITED and its registration (the threads share the vCPU: nothing to wait for); with several: QUERY answers none, the rest EINVAL",
        ),
        |k, _, a| k.membarrier(a[0], a[1]),
    ),
    Syscall::refused(
        332,
        "statx",
        libc::ENOSYS,
        "not implemented; glibc falls back to newfstatat",
    ),
    Syscall::refused(
        334,
        "rseq",
        libc::ENOSYS,
        "restartable sequences are optional; glibc carries on without",
    ),
    Syscall::new(
        435,
        "clone3",
        Partial(
            "see clone; a pid file descriptor, a chosen tid, a cgroup and flags beyond 32 bits answer EINVAL",
        ),
        |k, m, a| k.clone3(m, a[0], a[1]),
    ),
    Syscall::new(
        436,
        "close_range",
        Partial(
            "closes, or with CLOSE_RANGE_CLOEXEC marks close-on-exec, the open descriptors in the range; CLOSE_RANGE_UNSHARE changes nothing (the table is the process's own)",
        ),
        |k, _, a| k.close_range(a[0], a[1], a[2]),
    ),
    Syscall::new(439, "faccessat2", Partial("see faccessat"), |k, m, a| {
        k.faccessat(m, a[0], a[1], a[2])
    }),
];

/// The row for syscall `number`, if the kernel answers it.
pub(super) fn find(number: u64) -> Option<&'static Syscall> {
    TABLE
        .binary_search_by_key(&number, |syscall| syscall.number)
        .ok()
        .and_then(|index| TABLE.get(index))
}

/// The table as a Markdown document (`docs/syscalls.md`).
#[cfg(test)]
fn markdown() -> String {
    let mut text = String::from(
        "# Syscalls\n\n\
         Generated from `lambda-vmm/src/kernel/table.rs` by the test \
         `syscall_doc_is_current` (run it with `UPDATE_SYSCALL_DOC=1` to rewrite this file).\n\n\
         Every syscall the guest's kernel answers, and how far it follows Linux. Any other \
         number answers `ENOSYS`, is counted, and is named in the invocation's log.\n\n\
         | number | name | support | note |\n| ---: | --- | --- | --- |\n",
    );
    for syscall in TABLE {
        let (support, note) = match syscall.support {
            Support::Full => ("full", String::new()),
            Support::Partial(note) => ("partial", note.to_string()),
            Support::Refused(errno, why) => ("refused", format!("{}: {why}", errno_name(errno))),
        };
        text.push_str(&format!(
            "| {} | `{}` | {support} | {note} |\n",
            syscall.number, syscall.name
        ));
    }
    text
}

/// The symbolic name of the errnos the table refuses with.
#[cfg(test)]
fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        _ => "an errno",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_unique_and_named_as_linux_names_them() {
        for pair in TABLE.windows(2) {
            assert!(pair[0].number < pair[1].number, "{pair:?}");
        }
        for syscall in TABLE {
            assert_eq!(
                super::super::names::name(syscall.number),
                Some(syscall.name),
                "syscall {}",
                syscall.number
            );
        }
    }

    #[test]
    fn syscall_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/syscalls.md");
        let expected = markdown();
        if std::env::var_os("UPDATE_SYSCALL_DOC").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/syscalls.md is stale: run `UPDATE_SYSCALL_DOC=1 cargo test -p lambda-vmm \
             syscall_doc_is_current` and commit the result"
        );
    }
}
