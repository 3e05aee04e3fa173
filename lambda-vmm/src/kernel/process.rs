//! The process: its ids, limits, signals, CPU state (FS base), randomness and identity.

use super::{Errno, Kernel, ProcessEnd, SysResult, SyscallContext};
use crate::vm::GuestMemory;

/// The program's pid and tid: it is the only process in its VM.
pub const PID: u64 = 1;

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const RLIMIT_STACK: u64 = 3;
const RLIMIT_NOFILE: u64 = 7;
const RLIM_INFINITY: u64 = u64::MAX;
const SS_DISABLE: u32 = 2;
/// Largest getrandom request served at once (Linux's own per-call cap).
const GETRANDOM_MAX: u64 = 32 << 20;

fn errno(code: i32) -> Errno {
    Errno(code)
}

/// Signals whose default action ends the process.
fn is_fatal_by_default(signal: u64) -> bool {
    !matches!(signal, 0 | 17 | 18 | 23 | 28) // none, SIGCHLD, SIGCONT, SIGURG, SIGWINCH
}

impl Kernel {
    fn signal_self(&mut self, signal: u64) -> SysResult {
        if signal > 64 {
            return Err(errno(libc::EINVAL));
        }
        if is_fatal_by_default(signal) {
            // Handlers are not run: a signal the program sends itself ends it, as it does for
            // `abort()` whose SIGABRT cannot be caught for long anyway.
            return self.end(ProcessEnd::Signaled(signal as i32));
        }
        Ok(0)
    }

    pub(super) fn kill(&mut self, pid: u64, signal: u64) -> SysResult {
        if pid as i64 == PID as i64 || pid == 0 || pid as i64 == -1 {
            self.signal_self(signal)
        } else {
            Err(errno(libc::ESRCH))
        }
    }

    pub(super) fn tkill(&mut self, tid: u64, signal: u64) -> SysResult {
        if tid == PID {
            self.signal_self(signal)
        } else {
            Err(errno(libc::ESRCH))
        }
    }

    pub(super) fn tgkill(&mut self, tgid: u64, tid: u64, signal: u64) -> SysResult {
        if tgid == PID && tid == PID {
            self.signal_self(signal)
        } else {
            Err(errno(libc::ESRCH))
        }
    }
}

/// `rt_sigaction`: handlers are accepted and never run; the old action reads as default.
pub fn rt_sigaction(memory: &GuestMemory, old_action: u64, sigset_size: u64) -> SysResult {
    if sigset_size != 8 {
        return Err(errno(libc::EINVAL));
    }
    if old_action != 0 {
        memory.write(old_action, &[0; 32])?;
    }
    Ok(0)
}

/// `rt_sigprocmask`: nothing is ever delivered asynchronously, so the mask reads as empty.
pub fn rt_sigprocmask(memory: &GuestMemory, old_set: u64, sigset_size: u64) -> SysResult {
    if sigset_size != 8 {
        return Err(errno(libc::EINVAL));
    }
    if old_set != 0 {
        memory.write(old_set, &[0; 8])?;
    }
    Ok(0)
}

/// `sigaltstack`: accepted; the old stack reads as disabled.
pub fn sigaltstack(memory: &GuestMemory, old_stack: u64) -> SysResult {
    if old_stack != 0 {
        let mut stack = [0u8; 24];
        stack[8..12].copy_from_slice(&SS_DISABLE.to_le_bytes());
        memory.write(old_stack, &stack)?;
    }
    Ok(0)
}

/// `arch_prctl`: the FS and GS bases.
pub fn arch_prctl(cx: &SyscallContext<'_>, code: u64, addr: u64) -> SysResult {
    match code {
        ARCH_SET_FS => {
            if addr >= 1 << 47 {
                return Err(errno(libc::EPERM));
            }
            cx.vcpu.set_fs_base(addr).map_err(|_| errno(libc::EINVAL))?;
            Ok(0)
        }
        ARCH_GET_FS | ARCH_GET_GS | ARCH_SET_GS => Err(errno(libc::EINVAL)),
        _ => Err(errno(libc::EINVAL)),
    }
}

fn limit_for(resource: u64, memory: &GuestMemory) -> Option<(u64, u64)> {
    match resource {
        RLIMIT_STACK => Some((crate::vm::layout::STACK_SIZE, crate::vm::layout::STACK_SIZE)),
        RLIMIT_NOFILE => Some((1024, 1024)),
        9 => Some((memory.layout().mapped_end, memory.layout().mapped_end)), // RLIMIT_AS
        0..=15 => Some((RLIM_INFINITY, RLIM_INFINITY)),
        _ => None,
    }
}

fn write_limit(memory: &GuestMemory, addr: u64, limit: (u64, u64)) -> SysResult {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&limit.0.to_le_bytes());
    bytes[8..].copy_from_slice(&limit.1.to_le_bytes());
    memory.write(addr, &bytes)?;
    Ok(0)
}

/// `getrlimit`.
pub fn getrlimit(memory: &GuestMemory, resource: u64, addr: u64) -> SysResult {
    let limit = limit_for(resource, memory).ok_or(errno(libc::EINVAL))?;
    write_limit(memory, addr, limit)
}

/// `prlimit64` on itself: reads limits; raising or lowering them is refused.
pub fn prlimit64(
    memory: &GuestMemory,
    pid: u64,
    resource: u64,
    new_limit: u64,
    old_limit: u64,
) -> SysResult {
    if pid != 0 && pid != PID {
        return Err(errno(libc::ESRCH));
    }
    let limit = limit_for(resource, memory).ok_or(errno(libc::EINVAL))?;
    if new_limit != 0 {
        return Err(errno(libc::EPERM));
    }
    if old_limit != 0 {
        write_limit(memory, old_limit, limit)?;
    }
    Ok(0)
}

/// `uname`.
pub fn uname(memory: &GuestMemory, addr: u64) -> SysResult {
    let mut buf = [0u8; 65 * 6];
    let fields = ["Linux", "lambda", "6.1.0", "#1 SMP", "x86_64", "(none)"];
    for (index, field) in fields.iter().enumerate() {
        buf[index * 65..index * 65 + field.len()].copy_from_slice(field.as_bytes());
    }
    memory.write(addr, &buf)?;
    Ok(0)
}

/// `getrusage`: zeros (CPU time is not accounted per process).
pub fn getrusage(memory: &GuestMemory, addr: u64) -> SysResult {
    memory.write(addr, &[0; 144])?;
    Ok(0)
}

/// `sysinfo`: total memory is the function's memory size.
pub fn sysinfo(memory: &GuestMemory, addr: u64) -> SysResult {
    let mut info = [0u8; 112];
    let total = memory.layout().mapped_end;
    info[32..40].copy_from_slice(&total.to_le_bytes()); // totalram
    info[80..82].copy_from_slice(&1u16.to_le_bytes()); // procs
    info[104..108].copy_from_slice(&1u32.to_le_bytes()); // mem_unit
    memory.write(addr, &info)?;
    Ok(0)
}

/// `sched_getaffinity`: one CPU.
pub fn sched_getaffinity(memory: &GuestMemory, size: u64, mask: u64) -> SysResult {
    if size < 8 || size % 8 != 0 {
        return Err(errno(libc::EINVAL));
    }
    memory.write(mask, &1u64.to_le_bytes())?;
    Ok(8)
}

/// `getrandom`: bytes from the host's generator, copied into guest memory.
pub fn getrandom(memory: &GuestMemory, addr: u64, len: u64) -> SysResult {
    let len = len.min(GETRANDOM_MAX);
    memory.validate(addr, len)?;
    let mut buf = vec![0u8; len as usize];
    crate::host::fill_random(&mut buf).map_err(|_| errno(libc::EIO))?;
    memory.write(addr, &buf)?;
    Ok(len)
}
