//! A kernel for one pretend program over guest memory without a VM (no KVM, no vCPU): a 1
//! MiB image of zeros at the static-pie load address, readable and writable, then the heap,
//! the stack and the vDSO as a real program has them; driven one syscall at a time the way
//! the run loop drives it: the unit tests' and the kernel fuzz target's way in.

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
// The unit tests use all of it; the fuzz target only the parts it drives.
#![cfg_attr(not(test), allow(dead_code))]

use std::sync::Arc;

use lambda_core::logs::LogCollector;
use lambda_core::runtime_api::RuntimeApi;

use super::vfs::FileSystem;
use super::{Kernel, KernelSetup, Step};
use crate::mm::GuestMemory;
use crate::mm::layout::PIE_LOAD_BASE;
use crate::vm::vcpu::SyscallArgs;

/// Where the pretend program image starts.
pub(crate) const IMAGE_START: u64 = PIE_LOAD_BASE;
/// Where the pretend program image ends (the heap starts there).
pub(crate) const IMAGE_END: u64 = IMAGE_START + (1 << 20);
/// Scratch memory for arguments, inside the pretend image.
pub(crate) const SCRATCH: u64 = IMAGE_START + (64 << 10);
/// The pretend function's memory.
pub(crate) const MEMORY_BYTES: u64 = 128 << 20;
/// Bytes of `/tmp` the pretend program may keep.
pub(crate) const TMP_QUOTA: u64 = 1 << 20;

/// Guest memory holding the pretend program's image.
fn pretend_program_memory() -> GuestMemory {
    use std::os::fd::AsFd;
    let memory = crate::vm::guest_memory(MEMORY_BYTES).expect("guest memory");
    let image = crate::host::memory_file(c"pretend-image").expect("a memory file");
    let len = IMAGE_END - IMAGE_START;
    image.set_len(len).expect("a memory file of 1 MiB");
    memory
        .load_image(image.as_fd(), IMAGE_START, len, |_| 3)
        .expect("the pretend image fits");
    memory
}

/// A kernel for one pretend program, and its memory.
pub struct Guest {
    pub kernel: Kernel,
    pub memory: GuestMemory,
    /// The stack pointer the calls are made with.
    pub stack_pointer: u64,
    next: u64,
}

impl Guest {
    /// A one-shot program whose stdin holds `event`, with `/var/task/bootstrap` and
    /// `/var/task/data.txt` and a 1 MiB `/tmp`.
    pub fn one_shot(event: &[u8]) -> Guest {
        Guest::with(Some(event.to_vec()), None, None)
    }

    /// A one-shot program like [`Guest::one_shot`] whose other paths are `image`'s.
    pub fn with_base_image(image: crate::base_image::BaseImage) -> Guest {
        Guest::with(Some(Vec::new()), None, Some(image))
    }

    /// A Runtime API program (its loopback socket reaches a Runtime API).
    pub fn runtime() -> Guest {
        Guest::with(None, Some(RuntimeApi::new("arn:test")), None)
    }

    fn with(
        stdin: Option<Vec<u8>>,
        api: Option<RuntimeApi>,
        image: Option<crate::base_image::BaseImage>,
    ) -> Guest {
        let memory = pretend_program_memory();
        let code: Arc<[u8]> = Arc::from(&b"\x7fELF program"[..]);
        let data: Arc<[u8]> = Arc::from(&b"0123456789"[..]);
        let fs = FileSystem::new(
            &[("bootstrap".into(), code), ("data.txt".into(), data)],
            &[("bin/layer-tool".into(), Arc::from(&b"#!/bin/sh\n"[..]))],
            TMP_QUOTA,
            image,
        );
        let kernel = Kernel::new(KernelSetup {
            tsc_offset: 0,
            fs,
            stdin,
            api,
            log: LogCollector::new(1 << 20),
        });
        Guest {
            kernel,
            memory,
            stack_pointer: crate::mm::layout::STACK_TOP - 4096,
            next: SCRATCH,
        }
    }

    /// Makes syscall `number` and returns how the run loop must go on.
    pub fn step(&mut self, number: u64, args: &[u64]) -> Step {
        let mut all = [0u64; 6];
        for (slot, arg) in all.iter_mut().zip(args) {
            *slot = *arg;
        }
        self.kernel.handle(
            &self.memory,
            SyscallArgs {
                number,
                args: all,
                stack_pointer: self.stack_pointer,
            },
        )
    }

    /// Makes syscall `number`, which must return: its value as the guest sees it in `rax`
    /// (`-errno` for an error).
    pub fn call(&mut self, number: u64, args: &[u64]) -> i64 {
        match self.step(number, args) {
            Step::Return(value) => value as i64,
            Step::SetFsBase(_)
            | Step::Yield
            | Step::ThreadExit
            | Step::SigReturn
            | Step::Exec
            | Step::Fork => 0,
            Step::Clone(thread) => i64::from(thread.tid),
            other => panic!("syscall {number} did not return: {other:?}"),
        }
    }

    /// Makes `tid` the thread whose calls come next.
    pub fn as_thread(&mut self, tid: u32) -> &mut Guest {
        self.kernel.enter_thread(tid);
        self
    }

    /// Copies `bytes` into scratch memory; returns their guest address.
    pub fn put(&mut self, bytes: &[u8]) -> u64 {
        let addr = self.next;
        self.memory.write(addr, bytes).unwrap();
        self.next = (addr + bytes.len() as u64 + 16).next_multiple_of(16);
        addr
    }

    /// A NUL-terminated string in scratch memory.
    pub fn put_str(&mut self, text: &str) -> u64 {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        self.put(&bytes)
    }

    /// `len` zeroed bytes of scratch memory.
    pub fn buffer(&mut self, len: usize) -> u64 {
        self.put(&vec![0; len])
    }

    /// Guest bytes.
    pub fn get(&self, addr: u64, len: usize) -> Vec<u8> {
        self.memory.read_vec(addr, len as u64).unwrap()
    }

    /// Sets `signal`'s action to "ignore" (`SIG_IGN`) with `rt_sigaction`.
    pub fn ignore_signal(&mut self, signal: u64) {
        let action = self.put(
            &[1u64, 0, 0, 0]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect::<Vec<_>>(),
        );
        assert_eq!(self.call(13, &[signal, action, 0, 8]), 0, "rt_sigaction");
    }

    /// Opens `path` with `flags` (and mode 0o644); the descriptor or `-errno`.
    pub fn open(&mut self, path: &str, flags: i32) -> i64 {
        let path = self.put_str(path);
        self.call(257, &[libc::AT_FDCWD as u64, path, flags as u64, 0o644])
    }
}
