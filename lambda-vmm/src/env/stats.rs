//! What a run cost the VMM beyond Lambda's figures, and the log's note of the syscalls the
//! kernel does not implement.

use std::collections::BTreeMap;
use std::time::Duration;

use lambda_core::logs::LogCollector;

use crate::machine::Machine;

/// What one run cost the VMM, beyond Lambda's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// VM exits (each costs tens of microseconds on a nested host).
    pub exits: u64,
    /// Syscalls the program made.
    pub syscalls: u64,
    /// Of those, how many entered the VMM directly from a rewritten `syscall` site instead of
    /// through ring 0 (see the crate docs).
    pub direct_syscalls: u64,
    /// Page faults the VMM resolved (each one VM exit): the program's first touches of
    /// memory it mapped, a window or a 2 MiB page at a time.
    pub page_faults: u64,
    /// Syscalls this kernel does not implement (they returned ENOSYS), by number.
    pub unsupported_syscalls: BTreeMap<u64, u64>,
    /// Time to build the VM and load the program.
    pub setup: Duration,
    /// Whether the VM was a ready-made spare (see `MicroVmBackend::with_spare_vms`).
    pub spare_vm: bool,
    /// vCPUs that have run the environment's program so far: 1, or more once it had threads
    /// ready to run at once and its memory size buys more (`FunctionConfig::vcpus`).
    pub vcpus: usize,
    /// Pages the machine's vCPU touched before it was handed out, so that their first
    /// touches by the program cost nothing: a machine restored ahead of time and warmed
    /// (see `Snapshot::keep_restored`); 0 otherwise.
    pub warmed_pages: usize,
    /// Pages copied into a machine restored plainly from a snapshot before its program ran:
    /// the frames the first restored run touched (only those it wrote, for lean restores:
    /// `MicroVmBackend::with_lean_restores`), once the snapshot has learnt them (see
    /// `Snapshot::pages_learnt`), so that no write of the program to them is a copy made on
    /// a fault and KVM maps the read ones eight at a time; 0 otherwise.
    pub copied_pages: usize,
}

impl RunStats {
    /// What `machine` has cost since it booted (for a Runtime API function after Init, what
    /// Init cost; for a one-shot function, the whole run).
    pub(crate) fn since_boot(machine: &Machine) -> RunStats {
        RunStats {
            exits: machine.exits(),
            syscalls: machine.stats().syscalls,
            direct_syscalls: machine.direct_syscalls(),
            page_faults: machine.page_faults(),
            unsupported_syscalls: machine.stats().unsupported.clone(),
            setup: machine.setup_time(),
            spare_vm: machine.used_spare(),
            vcpus: machine.vcpus_used(),
            warmed_pages: machine.warmed_pages(),
            copied_pages: machine.copied_pages(),
        }
    }

    /// Most distinct unsupported syscall numbers [`RunStats::unsupported_syscalls`] counts one
    /// by one; the rest are counted together under [`RunStats::OTHER_UNSUPPORTED`].
    pub const MAX_UNSUPPORTED_KINDS: usize = crate::kernel::MAX_UNSUPPORTED_KINDS;
    /// The key under which unsupported syscalls beyond the first
    /// [`RunStats::MAX_UNSUPPORTED_KINDS`] numbers are counted.
    pub const OTHER_UNSUPPORTED: u64 = crate::kernel::OTHER_UNSUPPORTED;
}

/// Adds a platform line naming the unsupported syscalls a run made, if any.
pub fn note_unsupported(log: &mut LogCollector, unsupported: &BTreeMap<u64, u64>) {
    if unsupported.is_empty() {
        return;
    }
    let list: Vec<String> = unsupported
        .iter()
        .map(|(&number, count)| match number {
            crate::kernel::OTHER_UNSUPPORTED => format!("others (x{count})"),
            number => match crate::kernel::syscall_name(number) {
                Some(name) => format!("{name} ({number}, x{count})"),
                None => format!("{number} (x{count})"),
            },
        })
        .collect();
    log.platform_line(&format!(
        "[lambda-vmm] unsupported syscalls returned ENOSYS: {}",
        list.join(", ")
    ));
}
