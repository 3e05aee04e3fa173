//! A kernel for one pretend program over plain guest memory (a memory file, no VM, no
//! vCPU), driven one syscall at a time the way the run loop drives it: the unit tests' and
//! the kernel fuzz target's way in.

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
// The unit tests use all of it; the fuzz target only the parts it drives.
#![cfg_attr(not(test), allow(dead_code))]

use std::sync::Arc;

use lambda_core::logs::LogCollector;
use lambda_core::runtime_api::RuntimeApi;

use super::vfs::FileSystem;
use super::{Kernel, KernelSetup, Step};
use crate::vm::GuestMemory;
use crate::vm::layout::USER_START;
use crate::vm::vcpu::SyscallArgs;

/// Where the pretend program image ends (the heap starts there).
pub(crate) const IMAGE_END: u64 = USER_START + (4 << 20);
/// Scratch memory for arguments, inside the pretend image.
pub(crate) const SCRATCH: u64 = USER_START + (1 << 20);
/// The pretend function's memory.
pub(crate) const MEMORY_BYTES: u64 = 128 << 20;
/// Bytes of `/tmp` the pretend program may keep.
pub(crate) const TMP_QUOTA: u64 = 1 << 20;

/// A kernel for one pretend program, and its memory.
pub struct Guest {
    pub kernel: Kernel,
    pub memory: GuestMemory,
    next: u64,
}

impl Guest {
    /// A one-shot program whose stdin holds `event`, with `/var/task/bootstrap` and
    /// `/var/task/data.txt` and a 1 MiB `/tmp`.
    pub fn one_shot(event: &[u8]) -> Guest {
        Guest::with(Some(event.to_vec()), None)
    }

    /// A Runtime API program (its loopback socket reaches a Runtime API).
    pub fn runtime() -> Guest {
        Guest::with(None, Some(RuntimeApi::new("arn:test")))
    }

    fn with(stdin: Option<Vec<u8>>, api: Option<RuntimeApi>) -> Guest {
        let memory = GuestMemory::new(MEMORY_BYTES).expect("guest memory");
        let code: Arc<[u8]> = Arc::from(&b"\x7fELF program"[..]);
        let data: Arc<[u8]> = Arc::from(&b"0123456789"[..]);
        let fs = FileSystem::new(
            &[("bootstrap".into(), code), ("data.txt".into(), data)],
            TMP_QUOTA,
        );
        let kernel = Kernel::new(
            &memory,
            KernelSetup {
                image_end: IMAGE_END,
                fs,
                stdin,
                api,
                log: LogCollector::new(1 << 20),
            },
        );
        Guest {
            kernel,
            memory,
            next: SCRATCH,
        }
    }

    /// Makes syscall `number` and returns how the run loop must go on.
    pub fn step(&mut self, number: u64, args: &[u64]) -> Step {
        let mut all = [0u64; 6];
        for (slot, arg) in all.iter_mut().zip(args) {
            *slot = *arg;
        }
        self.kernel
            .handle(&self.memory, SyscallArgs { number, args: all })
    }

    /// Makes syscall `number`, which must return: its value as the guest sees it in `rax`
    /// (`-errno` for an error).
    pub fn call(&mut self, number: u64, args: &[u64]) -> i64 {
        match self.step(number, args) {
            Step::Return(value) => value as i64,
            Step::SetFsBase(_) => 0,
            other => panic!("syscall {number} did not return: {other:?}"),
        }
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

    /// Opens `path` with `flags` (and mode 0o644); the descriptor or `-errno`.
    pub fn open(&mut self, path: &str, flags: i32) -> i64 {
        let path = self.put_str(path);
        self.call(257, &[libc::AT_FDCWD as u64, path, flags as u64, 0o644])
    }
}
