//! A machine frozen where every thread waits in a call, and machines made from it.
//!
//! What is kept: the guest's memory, written once into a sealed memory file that every
//! restored machine maps copy-on-write (so they share its untouched pages and each pays
//! only for the pages it writes); the address space's bookkeeping and the kernel area (the
//! page-table root); each thread's registers, FPU/SSE/AVX state (`KVM_GET_XSAVE`), FS base
//! and the call it waits in; and the kernel's state (descriptors, sockets, epoll sets,
//! pipes, `/tmp`, futex waiters, signal state, the Runtime API's state, the clock's boot
//! time). A vCPU's special registers and MSRs are not kept: they are the same for every
//! program ([`crate::vm::cpu::configure_vcpu`]), and a restored machine's vCPUs come set up
//! with them.

use std::fs::File;
use std::time::Instant;

use lambda_core::logs::LogCollector;
use lambda_core::{FunctionConfig, Stop};

use super::cpus::Cpu;
use super::tasks::Tasks;
use super::{Machine, MachineOptions, Settled, prepare_vm, reused_vm};
use crate::error::SnapshotError;
use crate::error::VmmError;
use crate::kernel::Kernel;
use crate::mm::SavedSpace;
use crate::program::ProgramImage;
use crate::vm::layout::MAX_VCPUS;
use crate::vm::{MicroVm, VmError};

/// A machine's state at a quiescent point (see the module documentation).
pub struct MachineSnapshot {
    /// The guest's memory, sealed.
    memory: File,
    saved: SavedSpace,
    kernel: Kernel,
    tasks: Tasks,
    image: ProgramImage,
    max_cpus: usize,
    memory_bytes: u64,
    stored_bytes: u64,
}

impl MachineSnapshot {
    /// Bytes of guest memory the snapshot holds (pages that read as zero are not stored).
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// How many threads the program had.
    pub fn threads(&self) -> usize {
        self.tasks.len()
    }

    /// The program.
    pub fn image(&self) -> &ProgramImage {
        &self.image
    }

    /// What a snapshot file holds of it besides the memory's contents.
    pub fn state(&self) -> MachineState<'_> {
        MachineState {
            saved: &self.saved,
            kernel: &self.kernel,
            tasks: &self.tasks,
            max_cpus: self.max_cpus as u64,
            memory_bytes: self.memory_bytes,
        }
    }

    /// The sealed memory file.
    pub fn memory(&self) -> &File {
        &self.memory
    }

    /// A snapshot read back from a file: `state` as [`MachineSnapshot::state`] gave it,
    /// `memory` its sealed memory file (of `state.memory_bytes`), `image` the program.
    pub fn from_parts(
        state: OwnedMachineState,
        memory: File,
        image: ProgramImage,
    ) -> MachineSnapshot {
        MachineSnapshot {
            memory,
            stored_bytes: state.saved.stored_bytes(),
            saved: state.saved,
            kernel: state.kernel,
            tasks: state.tasks,
            image,
            max_cpus: usize::try_from(state.max_cpus)
                .unwrap_or(MAX_VCPUS)
                .clamp(1, MAX_VCPUS),
            memory_bytes: state.memory_bytes,
        }
    }
}

/// What a snapshot file holds of a machine besides its memory's contents (written).
#[derive(Clone, Copy, serde::Serialize)]
pub struct MachineState<'a> {
    /// The address space and the kernel area's page tables.
    pub saved: &'a SavedSpace,
    /// The kernel's state.
    pub kernel: &'a Kernel,
    /// The threads' CPU state.
    pub(super) tasks: &'a Tasks,
    /// vCPUs the program may run on.
    pub max_cpus: u64,
    /// Guest memory size.
    pub memory_bytes: u64,
}

/// [`MachineState`], read back (the same fields in the same order).
#[derive(serde::Deserialize)]
pub struct OwnedMachineState {
    /// The address space and the kernel area's page tables.
    pub saved: SavedSpace,
    /// The kernel's state.
    pub kernel: Kernel,
    /// The threads' CPU state.
    pub(super) tasks: Tasks,
    /// vCPUs the program may run on.
    pub max_cpus: u64,
    /// Guest memory size.
    pub memory_bytes: u64,
}

impl OwnedMachineState {
    /// Checks the threads read from a snapshot file, for a vCPU whose KVM loads XSAVE
    /// regions within `xsave`, against the kernel's (see `Tasks::check`). Says what is
    /// wrong.
    pub fn check_threads(&self, xsave: crate::vm::xsave::XsaveLimits) -> Result<(), String> {
        self.tasks.check(xsave, &self.kernel.thread_ids())
    }
}

impl Machine {
    /// Runs until no thread can run (every one waits in a call), the program ends, or
    /// `deadline` passes; `Ok(())` if it went quiescent.
    pub fn settle(&mut self, deadline: Instant) -> Result<Result<(), Stop>, VmmError> {
        match self.run(deadline, |_, nothing_runnable| nothing_runnable)? {
            Settled::Waiting => Ok(Ok(())),
            Settled::Ended(stop) => Ok(Err(stop)),
        }
    }

    /// Freezes the machine's state (it goes on running afterwards as if nothing happened).
    /// Every thread must be waiting in a call: a machine between [`Machine::run`]s whose
    /// threads are all blocked.
    pub fn snapshot(&mut self) -> Result<MachineSnapshot, SnapshotError> {
        if !self.parents.is_empty() {
            return Err(SnapshotError::NotQuiescent(
                "a child process was running while its parent waited in fork".into(),
            ));
        }
        if self.tasks.running() > 0 || self.tasks.any_ready() {
            return Err(SnapshotError::NotQuiescent(
                "a thread of the program was still runnable".into(),
            ));
        }
        // Every thread's FPU state goes back to the thread, so the tasks hold it all.
        for cpu in &mut self.cpus {
            if let Some(tid) = cpu.loaded.take() {
                let fpu = cpu.vcpu.save_fpu().map_err(SnapshotError::Vm)?;
                if let Some(task) = self.tasks.get_mut(tid) {
                    task.fpu = Some(fpu);
                }
            }
        }
        let vm = self.vm.as_ref().ok_or(SnapshotError::NoMachine)?;
        let file =
            crate::host::sealable_memory_file(c"lambda-snapshot").map_err(SnapshotError::Memory)?;
        let saved = vm.memory.save(&file).map_err(SnapshotError::Memory)?;
        let stored_bytes = saved.stored_bytes();
        crate::host::seal_contents(&file).map_err(SnapshotError::Memory)?;
        let mut kernel = self.kernel.clone();
        // The log so far is the Init's (the caller has it); restored machines get their own.
        kernel.replace_log(LogCollector::new(0));
        Ok(MachineSnapshot {
            memory: file,
            saved,
            kernel,
            tasks: self.tasks.clone(),
            image: self.image.clone(),
            max_cpus: self.max_cpus,
            memory_bytes: vm.memory.size(),
            stored_bytes,
        })
    }

    /// Copies the pages `snapshot` stored into this machine's memory now (it was restored
    /// from `snapshot`; see [`crate::mm::GuestMemory::populate_stored`]).
    pub fn populate_restored(&mut self, snapshot: &MachineSnapshot) {
        self.teaches = false;
        if let Some(vm) = &self.vm {
            vm.memory.populate_stored(&snapshot.saved);
        }
    }

    /// Hands a machine restored ahead of time to its environment: its output goes to `log`,
    /// and `setup` (the time to take it) is its setup time.
    pub fn hand_over(&mut self, log: LogCollector, setup: std::time::Duration) {
        self.kernel.replace_log(log);
        self.setup = setup;
        self.from_spare = true;
    }

    /// A machine in the state `snapshot` froze, in a spare VM if one is ready (else a new
    /// one), its output going to `log`. Its threads go on from the calls they waited in.
    pub fn restore(
        snapshot: &MachineSnapshot,
        config: &FunctionConfig,
        options: &MachineOptions,
        log: LogCollector,
    ) -> Result<Machine, VmmError> {
        let start = Instant::now();
        if config.memory_bytes() != snapshot.memory_bytes {
            return Err(VmmError::Restore(SnapshotError::Foreign(format!(
                "it was taken at {} MB and the function has {} MB",
                snapshot.memory_bytes >> 20,
                config.memory_mb
            ))));
        }
        // A spare's first vCPU is set up already; a new VM's is set up here.
        let start_first = |vm: &mut MicroVm| -> Result<(), VmmError> {
            let first = vm.vcpus.first_mut().ok_or_else(|| {
                VmError::kvm("KVM_CREATE_VCPU")(kvm_ioctls::Error::new(libc::ENODEV))
            })?;
            first.start(0, 0)?;
            Ok(())
        };
        let (mut vm, from_spare) = match reused_vm(snapshot.memory_bytes, options) {
            Some((vm, from_spare)) => {
                let vm = prepare_vm(vm, options, |vm| {
                    vm.memory
                        .restore(&snapshot.memory, &snapshot.saved)
                        .map_err(|error| VmmError::Restore(SnapshotError::Memory(error)))?;
                    start_first(vm)
                })?;
                (vm, from_spare)
            }
            // A VM made for this restore maps the memory file from the start.
            None => {
                let vm =
                    MicroVm::restored(snapshot.memory_bytes, &snapshot.memory, &snapshot.saved)?;
                (prepare_vm(Box::new(vm), options, start_first)?, false)
            }
        };
        let kernel = snapshot.kernel.restored(vm.vcpus[0].tsc_offset(), log);
        let cpus: Vec<Cpu> = vm.vcpus.drain(..).map(Cpu::new).collect();
        Ok(Machine {
            vm: Some(vm),
            cpus,
            max_cpus: snapshot.max_cpus,
            image: snapshot.image.clone(),
            kernel,
            tasks: snapshot.tasks.clone(),
            setup: start.elapsed(),
            from_spare,
            vdso: !options.no_vdso,
            parents: Vec::new(),
            programs: options.programs.clone(),
            teaches: true,
            warmed: 0,
            copied: 0,
        })
    }
}
