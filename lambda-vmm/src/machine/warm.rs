//! Warming a machine restored ahead of time: before it is handed out, its vCPU touches the
//! pages an earlier machine restored from the same snapshot touched in its first run, so
//! that KVM has built their translations (its shadow page tables, on this host) and the
//! program's first touches cost nothing (`docs/snapshots.md`).
//!
//! The lesson comes from a machine restored plainly (its memory mapped from the snapshot and
//! nothing populated): after its first run, the pages the host has mapped in its memory are
//! the ones it touched ([`crate::mm::GuestMemory::touched_pages`]), and those it holds a
//! private copy of are the frames it wrote ([`crate::mm::GuestMemory::written_frames`]).
//! Later plain restores have those frames copied in before they run
//! ([`Machine::populate_written`]).

use std::time::Instant;

use super::Machine;
use crate::error::VmmError;
use crate::mm::PageTouch;
use crate::trace::span;
use crate::vm::layout::TOUCH_REGISTERS;

/// What the first run of a machine restored from a snapshot touched in memory.
#[derive(Debug, Clone, Default)]
pub struct Lesson {
    /// The program's pages it touched, by virtual address, and how: machines restored ahead
    /// touch them again ([`Machine::warm`]).
    pub pages: Vec<PageTouch>,
    /// Runs (guest-physical address, length) of the frames it wrote: plain restores copy
    /// them in ([`Machine::populate_written`]).
    pub written: Vec<(u64, u64)>,
}

impl Machine {
    /// What this machine's program touched since it was restored, if it can tell: it was
    /// restored with nothing populated and has not been asked before. `None` otherwise.
    pub fn lesson(&mut self) -> Option<Lesson> {
        if !std::mem::take(&mut self.teaches) {
            return None;
        }
        let memory = &self.vm.as_ref()?.memory;
        Some(Lesson {
            pages: memory.touched_pages().ok()?,
            written: memory.written_frames().ok()?,
        })
    }

    /// Copies the frames `lesson` says the first run wrote into this machine's memory before
    /// it runs (it must not have run since it was restored), so that its program's writes
    /// to them are not copies made on a write fault, each of which reaches every VM in the
    /// process on the host. Counted in the machine's setup (its Restore Duration).
    pub fn populate_written(&mut self, lesson: &Lesson) {
        let start = Instant::now();
        self.teaches = false;
        if let Some(vm) = &self.vm {
            self.copied = vm.memory.populate_frames(&lesson.written);
        }
        self.setup = self.setup.saturating_add(start.elapsed());
    }

    /// Touches `pages` from the machine's first vCPU, reading them or writing them (the
    /// bytes unchanged) as the program did, where its page tables still allow that; the
    /// machine must not have run since it was restored. Returns how many pages were touched.
    /// Stops early, harmlessly, if the vCPU stops anywhere but the end of a touch stub.
    pub fn warm(&mut self, pages: &[PageTouch]) -> Result<usize, VmmError> {
        span!("warm", pages = pages.len());
        self.teaches = false;
        let (Some(vm), Some(cpu)) = (self.vm.as_ref(), self.cpus.first_mut()) else {
            return Ok(0);
        };
        let warmed = &mut self.warmed;
        let allowed: Vec<PageTouch> = pages
            .iter()
            .filter_map(|&touch| vm.memory.may_touch(touch))
            .collect();
        for write in [false, true] {
            let addresses: Vec<u64> = allowed
                .iter()
                .filter(|touch| touch.write == write)
                .map(|touch| touch.va)
                .collect();
            for batch in addresses.chunks(TOUCH_REGISTERS) {
                if !cpu.vcpu.touch(vm.memory.physical(), batch, write)? {
                    return Ok(*warmed);
                }
                *warmed += batch.len();
            }
        }
        Ok(*warmed)
    }

    /// Pages [`Machine::populate_written`] copied in.
    pub fn copied_pages(&self) -> usize {
        self.copied
    }

    /// Pages [`Machine::warm`] touched.
    pub fn warmed_pages(&self) -> usize {
        self.warmed
    }
}
