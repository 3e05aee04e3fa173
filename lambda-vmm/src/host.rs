//! The host syscalls (and instructions) the crate uses outside KVM and guest memory, each
//! behind a safe function: memory files, random bytes, signalling a process group, the TSC,
//! opening a file beneath a directory that acts as its root, the malloc arena limit, and
//! taking standard output for a host process's protocol.

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

/// A new anonymous memory file like [`memory_file`] that can be sealed ([`seal_contents`]).
pub fn sealable_memory_file(name: &CStr) -> io::Result<File> {
    // SAFETY: as in `memory_file`; MFD_ALLOW_SEALING only permits later F_ADD_SEALS.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create, is open, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Freezes a memory file made by [`sealable_memory_file`]: from now on nobody can write it,
/// grow it or shrink it (`F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL`); private
/// copy-on-write mappings of it stay possible. Fails while a shared writable mapping of it
/// exists.
pub fn seal_contents(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS on a descriptor we own; the call reads no memory of ours.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `path`, relative to the directory `root`, with `flags` (`O_*`, close-on-exec always
/// added), resolving it as if `root` were `/` (`openat2` with `RESOLVE_IN_ROOT`): `..` stops
/// at `root`, absolute symbolic links start again from `root`, and `/proc`'s magic links are
/// refused, so no path can name anything outside `root`.
pub fn open_beneath(root: &File, path: &CStr, flags: i32) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    // SAFETY: open_how is plain data; all-zero is its default (mode 0, no flags).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = u64::try_from(flags | libc::O_CLOEXEC).unwrap_or(0);
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    let mut raced = 0;
    loop {
        // SAFETY: openat2(2) reads the NUL-terminated `path` and `size_of::<open_how>()` bytes
        // of `how`, both alive for the call; `root` is an open descriptor we borrow. The
        // result is checked before use.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            let error = io::Error::last_os_error();
            // EAGAIN: a rename raced the lookup (RESOLVE_IN_ROOT's documented retry).
            if matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) && raced < 16 {
                raced += 1;
                continue;
            }
            return Err(error);
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: `fd` was just returned by openat2, is open, and nothing else owns it.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
}

/// A file's contents frozen in a sealed memory file (nobody can write, grow or shrink it
/// again) and mapped read-only into this process: readable as bytes without a copy, and
/// mappable copy-on-write into guest memory by its descriptor, so every reader shares one
/// copy of its pages. Sealing also means no access through the mapping can fault (a host
/// file truncated under a mapping would raise `SIGBUS` on the next read).
#[derive(Debug)]
pub struct FrozenFile {
    file: File,
    /// Start of the read-only mapping of the whole file (dangling when it is empty).
    start: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and its file sealed against writes, so the bytes never
// change while it lives: sharing references across threads is as safe as for a `&[u8]`.
unsafe impl Send for FrozenFile {}
// SAFETY: as above.
unsafe impl Sync for FrozenFile {}

impl FrozenFile {
    /// Freezes `bytes`; `name` shows in `/proc/<pid>/maps`.
    pub fn new(name: &CStr, bytes: &[u8]) -> io::Result<FrozenFile> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileExt;
        let file = sealable_memory_file(name)?;
        file.write_all_at(bytes, 0)?;
        seal_contents(&file)?;
        let len = bytes.len();
        if len == 0 {
            return Ok(FrozenFile {
                file,
                start: std::ptr::NonNull::dangling().as_ptr(),
                len,
            });
        }
        // SAFETY: a new read-only shared mapping of `len` bytes of a file we own that holds
        // exactly `len` bytes and can no longer shrink (sealed); the kernel picks the
        // address, and the result is checked before use. Drop unmaps it.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(FrozenFile {
            file,
            start: start.cast::<u8>().cast_const(),
            len,
        })
    }

    /// The sealed memory file, for mapping it elsewhere.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl std::ops::Deref for FrozenFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `start` is the read-only mapping of `len` bytes made in `new` (or dangling
        // with `len` 0), alive until drop; its file is sealed, so the bytes never change.
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }
}

impl Drop for FrozenFile {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `new`, unmapped once; no reference into it outlives
            // `self` (`deref` borrows `self`).
            unsafe {
                libc::munmap(self.start.cast_mut().cast(), self.len);
            }
        }
    }
}

/// Asks glibc's `malloc` to keep one arena for the whole process (`M_ARENA_MAX` = 1), unless
/// the process's `GLIBC_TUNABLES` sets `glibc.malloc.arena_max` itself; once per process.
///
/// Every thread that allocates gets an arena of its own by default, and such an arena's heap
/// grows by `mprotect`, a page range at a time, as what the thread keeps grows. With many VMs
/// in one process, each of those calls reaches every VM's MMU notifier and waits for the
/// process's memory map, which `KVM_CREATE_VM` holds for milliseconds
/// (`docs/platform.md`, "Many VMs in one process"). The main arena grows by `brk`, which no
/// notifier hears of. Threads whose arena exists already keep it; threads that allocate
/// first after this call share the existing arenas.
pub fn limit_malloc_arenas() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let tuned = std::env::var("GLIBC_TUNABLES")
            .is_ok_and(|tunables| tunables.contains("glibc.malloc.arena_max"));
        if !tuned {
            // SAFETY: `mallopt` only sets one of malloc's parameters; any positive arena
            // count is valid, and malloc reads it under its own lock.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        }
    });
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

/// Runs `spawn` (which starts a process) with the calling thread limited to the first `cpus`
/// of the CPUs it may run on (all of them if there are fewer), then gives the thread its CPUs
/// back: the process inherits the limit, as the micro-VM gives a function as many vCPUs as
/// its memory size buys, so the process backend shows a program the same CPU count. (Not a
/// `pre_exec` hook: that would make every spawn a `fork` instead of a `posix_spawn`.) If the
/// thread's CPUs cannot be read or set, `spawn` runs as it is.
pub fn spawn_on_cpus<T>(cpus: usize, spawn: impl FnOnce() -> T) -> T {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity(2) writes at most `size` bytes to `allowed`, which is that
    // large; pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut allowed) } != 0 {
        return spawn();
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
    /// Gives the thread its CPUs back, also if `spawn` panics.
    struct Restore(libc::cpu_set_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: sched_setaffinity(2) reads `size_of::<cpu_set_t>()` bytes of a set we
            // own; it touches no other memory.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0);
            }
        }
    }
    // SAFETY: as in `Restore::drop`.
    if unsafe { libc::sched_setaffinity(0, size, &chosen) } != 0 {
        return spawn();
    }
    let _restore = Restore(allowed);
    spawn()
}

/// The host's time-stamp counter.
pub fn tsc() -> u64 {
    // SAFETY: `rdtsc` only reads the time-stamp counter, which every x86-64 CPU has; it
    // touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The CPU's MXCSR_MASK: the MXCSR bits it has, which Linux checks the MXCSR of an XSAVE
/// state against before KVM loads it (FXSAVE's bytes 28-31; 0 there means 0xffbf, a CPU
/// without DAZ).
pub fn mxcsr_mask() -> u32 {
    /// FXSAVE's 512-byte area, which must be 16-byte aligned.
    #[repr(C, align(16))]
    struct FxsaveArea([u8; 512]);
    let mut area = FxsaveArea([0; 512]);
    // SAFETY: `fxsave64` writes the 512-byte legacy FPU/SSE state to the address it is
    // given, which must be 16-byte aligned: `area` is 512 bytes, aligned to 16 by its type,
    // and borrowed mutably for the call. Every x86-64 CPU has FXSAVE (`fxsr` is in the
    // target's baseline).
    unsafe { core::arch::x86_64::_fxsave64(area.0.as_mut_ptr()) };
    match u32::from_le_bytes([area.0[28], area.0[29], area.0[30], area.0[31]]) {
        0 => 0xffbf,
        mask => mask,
    }
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

/// Asks the kernel to let the pipe behind `pipe` hold `bytes` (`F_SETPIPE_SZ`; the kernel
/// rounds up to a power of two pages). The buffer's pages are taken only as data fills them.
/// Returns the capacity the pipe has afterwards.
///
/// Errors: `pipe` is not a pipe, `bytes` is over `/proc/sys/fs/pipe-max-size` (1 MiB by
/// default) for an unprivileged process, or the user's pipe pages are over
/// `/proc/sys/fs/pipe-user-pages-soft`.
pub fn grow_pipe(pipe: &impl std::os::fd::AsFd, bytes: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let bytes =
        libc::c_int::try_from(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: F_SETPIPE_SZ on a descriptor `pipe` keeps open for the call; it takes an
    // integer and reads no memory of ours.
    let capacity = unsafe { libc::fcntl(pipe.as_fd().as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
    usize::try_from(capacity).map_err(|_| io::Error::last_os_error())
}

/// Takes this process's standard output for a protocol of its own: returns a new descriptor
/// (close-on-exec) for what standard output was, and points descriptor 1 at standard error,
/// so nothing else the process prints reaches the protocol's reader.
pub fn take_stdout() -> io::Result<File> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on descriptor 1 reads no memory of ours; the result is
    // checked before use.
    let fd = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by fcntl, is open, and nothing else owns it.
    let protocol = unsafe { File::from_raw_fd(fd) };
    // SAFETY: dup2(2) takes two descriptors of this process and reads no memory of ours;
    // descriptor 1 is replaced atomically by a copy of descriptor 2.
    if unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mxcsr_mask_holds_the_bits_every_cpu_has() {
        // FXSAVE's mask: the exception flags and masks, rounding control and flush-to-zero
        // (0xffbf) on every x86-64 CPU, DAZ (bit 6) on most, and on AMD's the misaligned
        // exception mask (bit 17) too: 0x2ffff here.
        let mask = mxcsr_mask();
        assert_eq!(mask & 0xffbf, 0xffbf, "{mask:#x}");
        assert_eq!(mask & !0x3ffff, 0, "{mask:#x}");
    }

    #[test]
    fn frozen_files_read_back_and_cannot_be_written() {
        use std::os::unix::fs::FileExt;
        let frozen = FrozenFile::new(c"test", b"frozen bytes").unwrap();
        assert_eq!(&*frozen, b"frozen bytes");
        assert!(frozen.file().write_at(b"x", 0).is_err());
        assert!(frozen.file().set_len(1).is_err());
        assert_eq!(&*FrozenFile::new(c"empty", b"").unwrap(), b"");
    }

    #[test]
    fn pipes_grow_and_other_files_are_refused() {
        let (reader, writer) = std::io::pipe().unwrap();
        assert!(grow_pipe(&writer, 1 << 20).unwrap() >= 1 << 20);
        // Either end names the same pipe.
        assert!(grow_pipe(&reader, 1 << 20).unwrap() >= 1 << 20);
        let file = memory_file(c"not-a-pipe").unwrap();
        let error = grow_pipe(&file, 1 << 20).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBADF), "{error}");
        assert!(grow_pipe(&writer, usize::MAX).is_err());
    }

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
