//! The CPUs the program's threads share, as the scheduler syscalls describe them: affinity
//! (the environment's vCPUs, 0 to n-1), scheduling policy and priority (only `SCHED_OTHER`, `SCHED_BATCH` and
//! `SCHED_IDLE`: the function runs unprivileged, so the real-time policies and a lower nice
//! value are refused, as Linux refuses them to an unprivileged user), and `membarrier` on
//! one vCPU (nothing to do: a switch between threads passes through the VMM, a barrier).
//! With several vCPUs `membarrier` offers no command: making the threads running on the other
//! vCPUs pass a barrier before the call returns is not built, and a runtime that asks falls
//! back to its own means, as on a kernel without `membarrier`.

use super::{Errno, Kernel, SysResult, abi};
use crate::mm::GuestMemory;

const SCHED_OTHER: u64 = 0;
const SCHED_FIFO: u64 = 1;
const SCHED_RR: u64 = 2;
const SCHED_BATCH: u64 = 3;
const SCHED_IDLE: u64 = 5;
/// `SCHED_RESET_ON_FORK`, which may be or-ed into a policy.
const SCHED_RESET_ON_FORK: u64 = 0x4000_0000;
const PRIO_PROCESS: u64 = 0;
const PRIO_USER: u64 = 2;
const MEMBARRIER_CMD_QUERY: u64 = 0;
const MEMBARRIER_CMD_GLOBAL: u64 = 1;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: u64 = 8;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: u64 = 16;

/// The process's nice value, whether it registered for private expedited barriers, and how
/// many vCPUs the environment has.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct SchedState {
    nice: i32,
    membarrier_registered: bool,
    cpus: u32,
}

impl SchedState {
    /// The environment's CPUs as an affinity mask: CPUs 0 to n-1 (at least CPU 0).
    fn cpu_mask(&self) -> u64 {
        let cpus = self.cpus.clamp(1, 64);
        u64::MAX >> 64u32.saturating_sub(cpus)
    }
}

impl Kernel {
    /// Tells the kernel how many vCPUs the environment has (1 unless set), which
    /// `sched_getaffinity` reports.
    pub fn set_cpus(&mut self, cpus: u32) {
        self.sched.cpus = cpus;
    }

    /// The thread a scheduler call names: 0 is the caller; an unknown id is `ESRCH`.
    fn sched_target(&self, pid: u64) -> Result<u32, Errno> {
        let pid = abi::int(pid);
        if pid < 0 {
            return Err(Errno(libc::EINVAL));
        }
        if pid == 0 {
            return Ok(self.threads.current());
        }
        let tid = pid.unsigned_abs();
        if self.threads.contains(tid) {
            Ok(tid)
        } else {
            Err(Errno(libc::ESRCH))
        }
    }

    /// `sched_getaffinity(pid, size, mask)`: the environment's CPUs; returns the bytes written.
    pub(super) fn sched_getaffinity(
        &self,
        memory: &GuestMemory,
        pid: u64,
        size: u64,
        mask: u64,
    ) -> SysResult {
        self.sched_target(pid)?;
        if size < 8 || size % 8 != 0 {
            return Err(Errno(libc::EINVAL));
        }
        memory.write(mask, &self.sched.cpu_mask().to_le_bytes())?;
        Ok(8)
    }

    /// `sched_setaffinity(pid, size, mask)`: a mask that holds one of the environment's CPUs is
    /// accepted (it changes nothing: every thread may run on every vCPU); one that holds none
    /// of them is `EINVAL`.
    pub(super) fn sched_setaffinity(
        &self,
        memory: &GuestMemory,
        pid: u64,
        size: u64,
        mask: u64,
    ) -> SysResult {
        self.sched_target(pid)?;
        if size == 0 {
            return Err(Errno(libc::EINVAL));
        }
        let first: u8 = memory.read_obj(mask)?;
        if u64::from(first) & self.sched.cpu_mask() == 0 {
            return Err(Errno(libc::EINVAL));
        }
        Ok(0)
    }

    /// `sched_getscheduler(pid)`.
    pub(super) fn sched_getscheduler(&self, pid: u64) -> SysResult {
        let tid = self.sched_target(pid)?;
        Ok(self
            .threads
            .get(tid)
            .map_or(SCHED_OTHER, |thread| thread.policy))
    }

    /// `sched_setscheduler(pid, policy, param)`.
    pub(super) fn sched_setscheduler(
        &mut self,
        memory: &GuestMemory,
        pid: u64,
        policy: u64,
        param: u64,
    ) -> SysResult {
        let tid = self.sched_target(pid)?;
        let policy = policy & !SCHED_RESET_ON_FORK;
        let priority: i32 = memory.read_obj(param)?;
        match policy {
            SCHED_OTHER | SCHED_BATCH | SCHED_IDLE if priority == 0 => {}
            SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => return Err(Errno(libc::EINVAL)),
            SCHED_FIFO | SCHED_RR if (1..=99).contains(&priority) => {
                return Err(Errno(libc::EPERM));
            }
            _ => return Err(Errno(libc::EINVAL)),
        }
        if let Some(thread) = self.threads.get_mut(tid) {
            thread.policy = policy;
        }
        Ok(0)
    }

    /// `sched_getparam(pid, param)`: priority 0, as for every non-real-time policy.
    pub(super) fn sched_getparam(&self, memory: &GuestMemory, pid: u64, param: u64) -> SysResult {
        self.sched_target(pid)?;
        memory.write_obj(param, 0i32)?;
        Ok(0)
    }

    /// `sched_setparam(pid, param)`: only priority 0 is valid for the policies on offer.
    pub(super) fn sched_setparam(&self, memory: &GuestMemory, pid: u64, param: u64) -> SysResult {
        self.sched_target(pid)?;
        let priority: i32 = memory.read_obj(param)?;
        if priority == 0 {
            Ok(0)
        } else {
            Err(Errno(libc::EINVAL))
        }
    }

    /// `getpriority(which, who)`: `20 - nice`, as the raw syscall returns it.
    pub(super) fn getpriority(&self, which: u64, who: u64) -> SysResult {
        self.priority_target(which, who)?;
        Ok(u64::from(
            20i32.saturating_sub(self.sched.nice).unsigned_abs(),
        ))
    }

    /// `setpriority(which, who, nice)`: raising the nice value is allowed, lowering it is not
    /// (`EACCES`, as for an unprivileged user); values are clamped to -20..19.
    pub(super) fn setpriority(&mut self, which: u64, who: u64, nice: u64) -> SysResult {
        self.priority_target(which, who)?;
        let nice = abi::int(nice).clamp(-20, 19);
        if nice < self.sched.nice {
            return Err(Errno(libc::EACCES));
        }
        self.sched.nice = nice;
        Ok(0)
    }

    fn priority_target(&self, which: u64, who: u64) -> Result<(), Errno> {
        if which > PRIO_USER {
            return Err(Errno(libc::EINVAL));
        }
        match (which, abi::int(who)) {
            (_, 0) => Ok(()),
            (PRIO_PROCESS, who) if who > 0 && self.threads.contains(who.unsigned_abs()) => Ok(()),
            // The process group and the user are the program's own (1 and root's 0 above).
            (_, 1) => Ok(()),
            _ => Err(Errno(libc::ESRCH)),
        }
    }

    /// `sched_get_priority_max(policy)`.
    pub(super) fn sched_get_priority_max(&self, policy: u64) -> SysResult {
        match policy {
            SCHED_FIFO | SCHED_RR => Ok(99),
            SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Ok(0),
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    /// `sched_get_priority_min(policy)`.
    pub(super) fn sched_get_priority_min(&self, policy: u64) -> SysResult {
        match policy {
            SCHED_FIFO | SCHED_RR => Ok(1),
            SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Ok(0),
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    /// `membarrier(cmd, flags, cpu_id)`: on one vCPU, the global and private expedited
    /// barriers (nothing to do: the threads share the vCPU); on several, no command (`QUERY`
    /// answers 0, the others `EINVAL`).
    pub(super) fn membarrier(&mut self, cmd: u64, flags: u64) -> SysResult {
        if flags != 0 {
            return Err(Errno(libc::EINVAL));
        }
        if self.sched.cpus > 1 {
            return match cmd {
                MEMBARRIER_CMD_QUERY => Ok(0),
                _ => Err(Errno(libc::EINVAL)),
            };
        }
        match cmd {
            MEMBARRIER_CMD_QUERY => Ok(MEMBARRIER_CMD_GLOBAL
                | MEMBARRIER_CMD_PRIVATE_EXPEDITED
                | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED),
            MEMBARRIER_CMD_GLOBAL => Ok(0),
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED => {
                self.sched.membarrier_registered = true;
                Ok(0)
            }
            MEMBARRIER_CMD_PRIVATE_EXPEDITED if self.sched.membarrier_registered => Ok(0),
            MEMBARRIER_CMD_PRIVATE_EXPEDITED => Err(Errno(libc::EPERM)),
            _ => Err(Errno(libc::EINVAL)),
        }
    }
}
