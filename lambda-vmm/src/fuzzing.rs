//! Entry points for the fuzz targets in `fuzz/` at the workspace root. Not an API: this
//! module exists only with the `fuzzing` feature, is hidden from the documentation, and
//! changes with the targets. It reaches the private `program` module, whose readers take the
//! guest's untrusted bytes: the package (a zip) and the ELF file in it.

use std::io::Cursor;

use crate::program::{LoadError, ProgramImage, read_zip};

/// What a checked ELF image looks like, for a fuzz target to check its invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfSummary {
    /// The entry point, after relocation.
    pub entry: u64,
    /// One past the highest loaded byte (page-aligned): where brk starts.
    pub image_end: u64,
    /// Bytes of the file copied into the staged image: host memory the program holds.
    pub staged_bytes: u64,
    /// Whether the image fits a function of the smallest memory size (128 MB).
    pub fits_smallest: bool,
    /// Whether the image fits a function of the largest memory size (10,240 MB).
    pub fits_largest: bool,
}

/// Checks `bytes` as a program, as [`crate::MicroVmBackend`] does with a function's code
/// (`ProgramImage::parse`: the headers checked, the segments staged in a memory file), then
/// asks whether it fits the smallest and largest memory sizes.
pub fn parse_elf(bytes: &[u8]) -> Result<ElfSummary, LoadError> {
    let image = ProgramImage::parse(bytes)?;
    let fits = |mb: u64| image.check_fits(mb << 20).is_ok();
    Ok(ElfSummary {
        entry: image.entry(),
        image_end: image.image_end(),
        staged_bytes: image.staged_bytes(),
        fits_smallest: fits(128),
        fits_largest: fits(10_240),
    })
}

/// Reads `bytes` as a zip package, as a `CodeLocation::Zip` is read, then checks its
/// `bootstrap` as a program. Returns the files' paths (relative to `/var/task`) and sizes,
/// and what checking the program gave.
#[allow(clippy::type_complexity)]
pub fn read_zip_package(
    bytes: &[u8],
) -> Result<(Vec<(String, usize)>, Result<ElfSummary, LoadError>), LoadError> {
    let package = read_zip(Cursor::new(bytes), "fuzz.zip")?;
    let files = package
        .files
        .iter()
        .map(|(name, contents)| (name.clone(), contents.len()))
        .collect();
    Ok((files, parse_elf(&package.program)))
}

/// What one syscall made of the kernel under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call returned this value to the guest (`-errno` for an error).
    Returned(i64),
    /// The call had to wait, still did after one retry, and was abandoned (as a signal
    /// would interrupt it): the next call is a new one.
    Abandoned,
    /// The program is over (`exit`, a response too large, ...): no more calls.
    Stopped,
}

/// The kernel of one pretend program, over plain guest memory (no VM), driven one syscall at
/// a time as the run loop drives it: the kernel fuzz target's way in.
pub struct KernelUnderTest {
    guest: crate::kernel::harness::Guest,
}

/// Where the target's scratch memory starts: input bytes go here and pointers aim here.
pub const SCRATCH: u64 = crate::kernel::harness::SCRATCH;
/// Bytes of scratch memory.
pub const SCRATCH_LEN: u64 = 64 << 10;
/// Bytes of `/tmp` the pretend program may keep.
pub const TMP_QUOTA: u64 = crate::kernel::harness::TMP_QUOTA;
/// The pretend function's memory.
pub const MEMORY_BYTES: u64 = crate::kernel::harness::MEMORY_BYTES;

impl KernelUnderTest {
    /// A one-shot program whose stdin holds `event`.
    pub fn one_shot(event: &[u8]) -> KernelUnderTest {
        KernelUnderTest {
            guest: crate::kernel::harness::Guest::one_shot(event),
        }
    }

    /// A Runtime API program with one invocation of `payload` waiting for it.
    pub fn runtime(payload: &[u8]) -> KernelUnderTest {
        let mut guest = crate::kernel::harness::Guest::runtime();
        let mut invocation = lambda_core::Invocation::new(payload.to_vec());
        invocation.request_id = "fuzz-1".into();
        if let Some(api) = guest.kernel.api_mut() {
            // Far in the future, in milliseconds since the epoch.
            let _ = api.deliver(invocation, 4_000_000_000_000);
        }
        KernelUnderTest { guest }
    }

    /// The syscall numbers the kernel answers (the rest answer `ENOSYS`).
    pub fn syscall_numbers() -> Vec<u64> {
        crate::kernel::table_numbers()
    }

    /// Addresses a hostile program might pass: null, the kernel area, the gaps, past the
    /// end of memory, the top of the address space.
    pub fn bad_addresses() -> Vec<u64> {
        use crate::mm::layout::{KERNEL_VIRT, MIN_MAP_ADDRESS, STACK_BOTTOM, STACK_TOP, VVAR};
        use crate::vm::layout::{GDT, KERNEL_STACK_TOP, PML4, SYSCALL_ENTRY, virt};
        vec![
            0,
            1,
            MIN_MAP_ADDRESS - 1,
            crate::kernel::harness::IMAGE_START - 1,
            crate::kernel::harness::IMAGE_END,
            PML4,
            virt(GDT),
            virt(SYSCALL_ENTRY),
            virt(KERNEL_STACK_TOP) - 8,
            KERNEL_VIRT,
            VVAR,
            STACK_BOTTOM - 1,
            STACK_TOP - 8,
            STACK_TOP,
            MEMORY_BYTES,
            1 << 47,
            u64::MAX - 7,
            u64::MAX,
        ]
    }

    /// Copies `bytes` into scratch memory at `offset` (cut to fit), as the program's own
    /// stores would; returns false when the calls so far have unmapped or write-protected
    /// the scratch page (the program's store would fault; the next call then sees what the
    /// memory holds, if anything).
    pub fn write_scratch(&mut self, offset: u64, bytes: &[u8]) -> bool {
        let offset = offset.min(SCRATCH_LEN);
        let room = usize::try_from(SCRATCH_LEN.saturating_sub(offset)).unwrap_or(0);
        let bytes = bytes.get(..room.min(bytes.len())).unwrap_or_default();
        self.guest
            .memory
            .write(SCRATCH.saturating_add(offset), bytes)
            .is_ok()
    }

    /// Makes one syscall; a call that must wait is retried once, then abandoned.
    pub fn syscall(&mut self, number: u64, args: [u64; 6]) -> Outcome {
        use crate::kernel::Step;
        for _ in 0..2 {
            match self.guest.step(number, &args) {
                Step::Return(value) => return Outcome::Returned(value as i64),
                Step::SetFsBase(_) | Step::Yield | Step::SigReturn => return Outcome::Returned(0),
                Step::Fork => {
                    // What the run loop does when no pid is free: the call fails.
                    self.guest.kernel.drop_fork();
                    return Outcome::Returned(-i64::from(libc::EAGAIN));
                }
                Step::Exec => {
                    // What the run loop would do when the program cannot be loaded: the
                    // call fails and the program goes on.
                    self.guest.kernel.take_exec();
                    return Outcome::Returned(-i64::from(libc::ENOEXEC));
                }
                Step::Clone(thread) => return Outcome::Returned(i64::from(thread.tid)),
                Step::ThreadExit => {
                    // The run loop would go on with another thread: the lowest.
                    if let Some(&tid) = self.guest.kernel.thread_ids().first() {
                        self.guest.kernel.enter_thread(tid);
                    }
                    return Outcome::Returned(0);
                }
                Step::Stop(_) => return Outcome::Stopped,
                Step::Block(_) => {}
            }
        }
        self.guest.kernel.abandon_wait();
        Outcome::Abandoned
    }

    /// Hands the host's side of the Runtime API everything the program sent (as the
    /// environment does between exits).
    pub fn drain_runtime_api(&mut self) {
        if let Some(api) = self.guest.kernel.api_mut() {
            while api.next_event().is_some() {}
        }
    }

    /// Checks that everything the program can grow stayed within its limit, and that its
    /// page tables reach no memory outside a memory slot; the text says what did not.
    pub fn check_limits(&mut self) -> Result<(), String> {
        let (fds, tmp) = self.guest.kernel.footprint();
        let mappings = self.guest.memory.mappings();
        if fds > crate::kernel::MAX_FDS {
            return Err(format!("{fds} open descriptors"));
        }
        let threads = self.guest.kernel.thread_count();
        if threads > crate::kernel::MAX_THREADS {
            return Err(format!("{threads} threads"));
        }
        if mappings > crate::mm::MAX_MAPPINGS {
            return Err(format!("{mappings} mappings"));
        }
        if tmp > TMP_QUOTA {
            return Err(format!("{tmp} bytes in /tmp over a {TMP_QUOTA}-byte quota"));
        }
        let resident = self.guest.memory.resident_bytes();
        let committed = self.guest.memory.committed_bytes();
        if resident > MEMORY_BYTES || committed > MEMORY_BYTES {
            return Err(format!(
                "{resident} bytes of guest memory held, {committed} given to the program"
            ));
        }
        if let Some(&(addr, len)) = self.guest.memory.uncovered().first() {
            return Err(format!(
                "the page tables reach {len:#x} bytes at {addr:#x}, in no memory slot"
            ));
        }
        let response = self.guest.kernel.take_response().len();
        if response > lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES {
            return Err(format!("a {response}-byte response"));
        }
        Ok(())
    }

    /// Checks that the state the calls left is one a snapshot file may hold: what the load
    /// requires of a kernel and an address space whatever the point they were taken at
    /// (`Kernel::check_state`: files, descriptors, pipes and their counts of open ends,
    /// threads, signal state, futex waiters, sockets against the Runtime API's connections,
    /// epoll registrations), and the address space saved as a snapshot saves it and checked
    /// as its file's load checks it (`SavedSpace::check`: the mappings and the heap, page
    /// tables, frame pool, backings, the VMM's pages and the vDSO's mappings).
    /// A call that left anything else would make the load refuse a snapshot the VMM took.
    /// The harness never runs a child process (`fork` fails here), so it must hold after
    /// every call while the program runs (not once it has ended: no snapshot is taken of an
    /// ended program). The text says what did not hold.
    pub fn check_snapshot_state(&self) -> Result<(), String> {
        self.guest.kernel.check_state(TMP_QUOTA)?;
        crate::mm::saved_space_ground::save_and_check(&self.guest.memory)
    }
}

/// A snapshot's saved address space, checked as a snapshot file's is
/// (`SavedSpace::check`): a small memory's saved page tables and frame pool, changed by
/// `data` (8 bytes a change, `Saved::apply` in `mm/saved_check.rs`). Whatever the check
/// lets through is restored into a new memory and walked as the VMM walks it, which must
/// not panic. `Ok(true)` when the check passed and the walk went through, `Ok(false)` when
/// the check refused (its reason is dropped), `Err` when a walk failed after a pass.
pub fn saved_space(data: &[u8]) -> Result<bool, String> {
    let mut ground = crate::mm::saved_space_ground::Saved::new();
    for change in data.chunks_exact(8).take(64) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(change);
        ground.apply(bytes);
    }
    if ground.check().is_err() {
        return Ok(false);
    }
    ground
        .restore_and_walk()
        .map(|()| true)
        .map_err(|error| format!("a walk failed after the check passed: {error}"))
}
