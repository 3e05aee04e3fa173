//! Syscall sites rewritten to enter the VMM directly.
//!
//! A `syscall` instruction costs a trip through ring 0, which nested PVM hosts emulate
//! (~60 us per syscall here). `out SYSCALL_PORT, al` executed at ring 3 exits to the VMM with
//! the same registers for a third of that, and it is also two bytes long. So the first time a
//! `syscall` instruction is seen (its address is exact: the stub's return address minus two),
//! the VMM rewrites it in that VM's copy-on-write memory; the program is stopped while it does.
//! The sites are remembered per program and applied to each new VM before it first runs,
//! where the bytes are checked again. Only a site the VMM itself found to be a `syscall`
//! instruction in the program's file (`code_scan.rs`) is ever rewritten: what the guest's
//! registers claim (the stub's return address is guest-controlled once the guest jumps to the
//! stub itself) and what it wrote into its memory count for nothing, so no invocation can
//! change the code a later one runs.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::mm::GuestMemory;
use crate::sync::lock;
use crate::vm::vcpu::{DIRECT_SYSCALL_INSTRUCTION, SYSCALL_INSTRUCTION};

/// Most sites remembered per program (a large static program has a few hundred).
const MAX_SITES: usize = 4096;

/// The proven `syscall` sites of one program.
#[derive(Debug, Default)]
pub struct SyscallSites {
    /// Executable ranges of the program image: sites are only learned inside them.
    executable: Vec<(u64, u64)>,
    /// Every `syscall` instruction of the program's file: the only sites that may be learned.
    verified: BTreeSet<u64>,
    known: Mutex<BTreeSet<u64>>,
}

/// Rewrites one site if it holds a `syscall` instruction; says whether it did.
pub(super) fn rewrite_syscall(memory: &GuestMemory, site: u64) -> bool {
    let mut bytes = [0u8; 2];
    if memory.read(site, &mut bytes).is_err() || bytes != SYSCALL_INSTRUCTION {
        return false;
    }
    memory.patch_code(site, &DIRECT_SYSCALL_INSTRUCTION)
}

impl SyscallSites {
    /// Sites of a program whose executable segments cover `executable` (start, length) and
    /// whose file holds `syscall` instructions at `verified`.
    pub fn new(executable: Vec<(u64, u64)>, verified: BTreeSet<u64>) -> SyscallSites {
        SyscallSites {
            executable,
            verified,
            known: Mutex::new(BTreeSet::new()),
        }
    }

    fn in_code(&self, site: u64) -> bool {
        self.executable.iter().any(|&(start, len)| {
            site >= start && site.saturating_add(2) <= start.saturating_add(len)
        })
    }

    /// After a syscall came through the stub from `site`: rewrites it in this VM and
    /// remembers it for the next ones.
    pub fn learn(&self, memory: &GuestMemory, site: u64) {
        if !self.in_code(site) || !self.verified.contains(&site) || !rewrite_syscall(memory, site) {
            return;
        }
        let mut known = lock(&self.known);
        if known.len() < MAX_SITES {
            known.insert(site);
        }
    }

    /// Rewrites every known site in a VM that has not run yet.
    pub fn apply(&self, memory: &GuestMemory) {
        let known = lock(&self.known);
        for &site in known.iter() {
            rewrite_syscall(memory, site);
        }
    }
}
