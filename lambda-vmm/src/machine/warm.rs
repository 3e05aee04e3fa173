//! Warming a machine restored ahead of time: before it is handed out, its vCPU touches the
//! pages an earlier machine restored from the same snapshot touched in its first run, so
//! that KVM has built their translations (its shadow page tables, on this host) and the
//! program's first touches cost nothing (`docs/snapshots.md`).
//!
//! The lesson comes from a machine restored plainly (its memory mapped from the snapshot and
//! nothing populated): after its first run, the pages the host has mapped in its memory are
//! the ones it touched ([`crate::mm::GuestMemory::touched_pages`]), and the frames it touched
//! are known, those it wrote apart ([`crate::mm::GuestMemory::touched_frames`]). Later plain
//! restores have those frames copied in before they run ([`Machine::populate_touched`]): all
//! of them, or only the written ones for lean restores.

use std::time::Instant;

use super::Machine;
use crate::error::VmmError;
use crate::mm::{PageTouch, TouchedFrames};
use crate::trace::span;
use crate::vm::layout::TOUCH_REGISTERS;

/// What the first run of a machine restored from a snapshot touched in memory.
#[derive(Debug, Clone, Default)]
pub struct Lesson {
    /// The program's pages it touched, by virtual address, and how: machines restored ahead
    /// touch them again ([`Machine::warm`]).
    pub pages: Vec<PageTouch>,
    /// The frames it touched, written and read: plain restores copy them in
    /// ([`Machine::populate_touched`]).
    pub frames: TouchedFrames,
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
            frames: memory.touched_frames().ok()?,
        })
    }

    /// Copies the frames `lesson` says the first run touched into this machine's memory
    /// before it runs (it must not have run since it was restored): those it wrote, and,
    /// unless `lean`, those it only read. Counted in the machine's setup (its Restore
    /// Duration).
    ///
    /// A written frame copied ahead is not first mapped read-only and then copied on the
    /// program's write, each such copy reaching every VM in the process on the host. A read
    /// frame copied ahead is one KVM's shadow paging maps with up to seven neighbours at one
    /// fault, where a frame still shared with the snapshot costs a fault of its own: more
    /// memory per environment (its own copy of what the first run read) for a faster first
    /// invocation (`docs/snapshots.md`, "Copying in what the first run touched").
    pub fn populate_touched(&mut self, lesson: &Lesson, lean: bool) {
        let start = Instant::now();
        self.teaches = false;
        if let Some(vm) = &self.vm {
            let mut copied = vm.memory.populate_frames(&lesson.frames.written);
            if !lean {
                copied = copied.saturating_add(vm.memory.populate_frames(&lesson.frames.read));
            }
            self.copied = copied;
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

    /// Pages [`Machine::populate_touched`] copied in.
    pub fn copied_pages(&self) -> usize {
        self.copied
    }

    /// Pages [`Machine::warm`] touched.
    pub fn warmed_pages(&self) -> usize {
        self.warmed
    }
}
