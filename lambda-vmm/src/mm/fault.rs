//! A page fault the program raised: resolved by backing the page when its mapping allows
//! the access, else the program's `SIGSEGV`, as Linux decides it.

use super::pages::OutOfMemory;
use super::physical::PhysicalMemory;
use super::space::AddressSpace;
use super::vma::{EXEC, READ, WRITE};

/// Error-code bit: the access was a write.
const WRITE_ACCESS: u64 = 1 << 1;
/// Error-code bit: a reserved bit was set in an entry (the VMM's own mistake).
const RESERVED: u64 = 1 << 3;
/// Error-code bit: the access was an instruction fetch.
const FETCH: u64 = 1 << 4;

/// A page fault as the CPU reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFault {
    /// The address accessed (CR2).
    pub addr: u64,
    /// The error code the CPU pushed.
    pub error_code: u64,
}

impl PageFault {
    /// What the access was, in words: "a read", "a write" or "an instruction fetch".
    pub fn access(&self) -> &'static str {
        if self.error_code & FETCH != 0 {
            "an instruction fetch"
        } else if self.error_code & WRITE_ACCESS != 0 {
            "a write"
        } else {
            "a read"
        }
    }

    /// What a mapping would have to allow: "reading", "writing" or "executing".
    pub fn needs(&self) -> &'static str {
        if self.error_code & FETCH != 0 {
            "executing"
        } else if self.error_code & WRITE_ACCESS != 0 {
            "writing"
        } else {
            "reading"
        }
    }
}

/// What became of a page fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    /// The page is backed now (or already was): the program goes on.
    Resolved,
    /// No mapping holds the address (Linux's `SEGV_MAPERR`).
    Unmapped,
    /// The mapping does not allow the access (`SEGV_ACCERR`).
    Forbidden,
    /// The page could not get memory: the function's memory is used up.
    OutOfMemory,
}

impl AddressSpace {
    /// Resolves `fault`.
    pub(super) fn page_fault(
        &mut self,
        physical: &PhysicalMemory,
        fault: PageFault,
    ) -> FaultOutcome {
        self.stats.page_faults = self.stats.page_faults.saturating_add(1);
        let Some((_, vma)) = self.find(fault.addr) else {
            return FaultOutcome::Unmapped;
        };
        let code = fault.error_code;
        let allowed = if code & FETCH != 0 {
            vma.prot & EXEC != 0
        } else if code & WRITE_ACCESS != 0 {
            vma.prot & WRITE != 0
        } else {
            vma.prot & (READ | WRITE | EXEC) != 0
        };
        if !allowed || code & RESERVED != 0 {
            return FaultOutcome::Forbidden;
        }
        match self.populate(physical, fault.addr) {
            Ok(()) => FaultOutcome::Resolved,
            Err(OutOfMemory) => {
                self.ran_out();
                FaultOutcome::OutOfMemory
            }
        }
    }
}
