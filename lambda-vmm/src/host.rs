//! The host syscalls (and instructions) the crate uses outside KVM and guest memory, each
//! behind a safe function: memory files, random bytes, signalling a process group, the TSC.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;

/// A new anonymous memory file (`memfd_create`, close-on-exec), empty; `name` shows in
/// `/proc/<pid>/fd` and `/proc/<pid>/maps`.
pub fn memory_file(name: &CStr) -> io::Result<File> {
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the flags are valid
    // and the result is checked before use.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create, is open, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Fills `buf` with random bytes from the kernel (`getrandom`, blocking until the pool is
/// ready, which it is long before any function runs).
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a writable slice that outlives the
        // call; getrandom writes at most that many bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Sends SIGKILL to every process of group `pgid`, a child spawned as the leader of its own
/// group. Callers kill before the leader is reaped, or right after, so the id still names
/// that group and cannot have been reused. Errors (the group is already gone) are ignored.
pub fn kill_process_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        // 0 would name our own group and 1 is init: never.
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid
    // names a process group.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Makes the process `command` starts run on the first `cpus` of the CPUs this process may
/// run on (all of them if there are fewer), as the micro-VM gives a function as many vCPUs as
/// its memory size buys: the process backend then shows a program the same CPU count. Without
/// a readable affinity here, `command` is left as it is.
pub fn limit_cpus(command: &mut std::process::Command, cpus: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity(2) writes at most `size_of::<cpu_set_t>()` bytes to `allowed`,
    // which is that large.
    let read =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) };
    if read != 0 {
        return;
    }
    // SAFETY: as above.
    let mut chosen: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let mut taken = 0;
    for cpu in 0..libc::CPU_SETSIZE as usize {
        // SAFETY: `cpu` is below CPU_SETSIZE, the sets' size in CPUs.
        if taken < cpus && unsafe { libc::CPU_ISSET(cpu, &allowed) } {
            // SAFETY: as above.
            unsafe { libc::CPU_SET(cpu, &mut chosen) };
            taken += 1;
        }
    }
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one system call on a set copied into it.
    unsafe {
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &chosen) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The host's time-stamp counter.
pub fn tsc() -> u64 {
    // SAFETY: `rdtsc` only reads the time-stamp counter, which every x86-64 CPU has; it
    // touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Whether the TSC is invariant (CPUID 0x8000_0007, EDX bit 8): it ticks at one rate in
/// every power state, so it can serve as a clock.
pub fn invariant_tsc() -> bool {
    let max_extended = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max_extended >= 0x8000_0007 && core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// The TSC's rate in kHz, measured against the monotonic clock over 100 ms (for tests that
/// run without a vCPU to ask).
#[cfg(test)]
pub fn tsc_khz_estimate() -> u64 {
    let (start, first) = (std::time::Instant::now(), tsc());
    std::thread::sleep(std::time::Duration::from_millis(100));
    let ticks = tsc().saturating_sub(first);
    let micros = u64::try_from(start.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    ticks.saturating_mul(1000) / micros
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_and_random_bytes() {
        let file = memory_file(c"test").unwrap();
        file.set_len(4096).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 4096);
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
