//! The process: its ids, limits, signals, CPU state (FS base), randomness and identity.

use super::{Errno, Kernel, SysResult, abi};
use crate::mm::GuestMemory;

/// The pid of an environment's first process, and its first thread's tid.
pub const FIRST_PID: u32 = 1;

/// Where FS bases end: `arch_prctl(ARCH_SET_FS)` refuses one at or above it (Linux's
/// `TASK_SIZE_MAX`), and `clone`'s TLS stops lower still, so no thread's can lie there.
pub const FS_BASE_END: u64 = 1 << 47;

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const RLIMIT_STACK: u64 = 3;
const RLIMIT_NOFILE: u64 = 7;
const RLIM_INFINITY: u64 = u64::MAX;
/// Largest getrandom request served at once (Linux's own per-call cap, `INT_MAX >> 6`).
const GETRANDOM_MAX: u64 = 33_554_431;
/// Bytes of randomness made and copied per step, so a large request needs no large buffer.
const GETRANDOM_CHUNK: u64 = 64 * 1024;
const GRND_NONBLOCK: u64 = 1;
const GRND_RANDOM: u64 = 2;
const GRND_INSECURE: u64 = 4;

fn errno(code: i32) -> Errno {
    Errno(code)
}

impl Kernel {
    /// `arch_prctl`: setting the FS base (the run loop applies it to the vCPU); the GS base
    /// and reading either are refused.
    pub(super) fn arch_prctl(&mut self, code: u64, addr: u64) -> SysResult {
        match code {
            ARCH_SET_FS => {
                if addr >= FS_BASE_END {
                    return Err(errno(libc::EPERM));
                }
                self.pending_step = Some(super::Step::SetFsBase(addr));
                Ok(0)
            }
            ARCH_GET_FS | ARCH_GET_GS | ARCH_SET_GS => Err(errno(libc::EINVAL)),
            _ => Err(errno(libc::EINVAL)),
        }
    }
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;

impl Kernel {
    /// `prctl`: thread names, and the process flags runtimes read or set at start-up (which
    /// change nothing here: there is no parent to outlive, no core dump, no privilege to
    /// gain). Any other option answers `EINVAL`, as Linux does for one it does not know.
    pub(super) fn prctl(&mut self, memory: &GuestMemory, option: u64, arg: u64) -> SysResult {
        match option {
            PR_SET_NAME => {
                let mut name = Vec::with_capacity(super::threads::THREAD_NAME_LEN);
                for offset in 0..super::threads::THREAD_NAME_LEN {
                    let byte: u8 = memory.read_obj(abi::field(arg, abi::count(offset))?)?;
                    if byte == 0 {
                        break;
                    }
                    name.push(byte);
                }
                self.set_thread_name(&name);
                Ok(0)
            }
            PR_GET_NAME => {
                memory.write(arg, &self.thread_name())?;
                Ok(0)
            }
            PR_SET_PDEATHSIG => {
                if arg > 64 {
                    return Err(errno(libc::EINVAL));
                }
                Ok(0)
            }
            PR_GET_PDEATHSIG => {
                memory.write_obj(arg, 0i32)?;
                Ok(0)
            }
            PR_GET_DUMPABLE => Ok(1),
            PR_SET_DUMPABLE => match arg {
                0 | 1 => Ok(0),
                _ => Err(errno(libc::EINVAL)),
            },
            PR_SET_NO_NEW_PRIVS => match arg {
                1 => Ok(0),
                _ => Err(errno(libc::EINVAL)),
            },
            PR_GET_NO_NEW_PRIVS => Ok(1),
            _ => Err(errno(libc::EINVAL)),
        }
    }
}

fn limit_for(resource: u64) -> Option<(u64, u64)> {
    match resource {
        RLIMIT_STACK => Some((crate::mm::layout::STACK_SIZE, crate::mm::layout::STACK_SIZE)),
        RLIMIT_NOFILE => Some((1024, 1024)),
        // RLIMIT_AS and the rest: unlimited, as on Lambda (address space costs nothing
        // until used; memory in use is bounded by the function's memory instead).
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
    let limit = limit_for(resource).ok_or(errno(libc::EINVAL))?;
    write_limit(memory, addr, limit)
}

/// `prlimit64` on itself: reads limits; raising or lowering them is refused.
pub fn prlimit64(
    memory: &GuestMemory,
    own_pid: u32,
    pid: u64,
    resource: u64,
    new_limit: u64,
    old_limit: u64,
) -> SysResult {
    if pid != 0 && pid != u64::from(own_pid) {
        return Err(errno(libc::ESRCH));
    }
    let limit = limit_for(resource).ok_or(errno(libc::EINVAL))?;
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
    for (slot, field) in buf.chunks_exact_mut(65).zip(fields) {
        if let Some(bytes) = slot.get_mut(..field.len()) {
            bytes.copy_from_slice(field.as_bytes());
        }
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
    let total = memory.size();
    info[32..40].copy_from_slice(&total.to_le_bytes()); // totalram
    info[80..82].copy_from_slice(&1u16.to_le_bytes()); // procs
    info[104..108].copy_from_slice(&1u32.to_le_bytes()); // mem_unit
    memory.write(addr, &info)?;
    Ok(0)
}

/// `getrandom`: bytes from the host's generator, copied into guest memory a chunk at a time.
/// Linux's flags are checked (the pool is always ready, so they change nothing else).
pub fn getrandom(memory: &GuestMemory, addr: u64, len: u64, flags: u64) -> SysResult {
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE
    {
        return Err(errno(libc::EINVAL));
    }
    let len = len.min(GETRANDOM_MAX);
    memory.validate(addr, len)?;
    let mut buf = vec![0u8; abi::size(len.min(GETRANDOM_CHUNK))];
    let mut done: u64 = 0;
    while done < len {
        let take = len.saturating_sub(done).min(GETRANDOM_CHUNK);
        let chunk = buf.get_mut(..abi::size(take)).ok_or(errno(libc::EIO))?;
        crate::host::fill_random(chunk).map_err(|_| errno(libc::EIO))?;
        memory.write(abi::field(addr, done)?, chunk)?;
        done = done.saturating_add(take);
    }
    Ok(len)
}
