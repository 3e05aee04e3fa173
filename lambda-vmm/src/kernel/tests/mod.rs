//! The kernel's syscalls tested without KVM: a [`Guest`] is a kernel over guest memory
//! without a VM (no KVM, no vCPU), driven one syscall at a time the way the run loop drives
//! it. One file per syscall family.

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

mod base_image;
mod exec;
mod files;
mod fork;
mod memory;
mod net;
mod pipes;
mod poll;
mod process;
mod sched;
mod signals;
mod snapshot_check;
mod table;
mod threads;
mod time;

pub(super) use super::harness::Guest;

/// `-errno` as a syscall returns it.
pub(super) fn err(errno: i32) -> i64 {
    -i64::from(errno)
}

/// What a snapshot file's load says of the guest's kernel and address space as a file of a
/// `contract` function would bring them back: [`crate::kernel::Kernel::check`] (the
/// harness's `/tmp` holds 1 MB), then the saved space's check of its memory saved as a
/// snapshot saves it.
pub(super) fn snapshot_check(guest: &Guest, contract: lambda_core::Contract) -> Result<(), String> {
    let config = lambda_core::FunctionConfig::new(
        "checked",
        lambda_core::CodeLocation::Executable("/bootstrap".into()),
    )
    .with_contract(contract)
    .with_ephemeral_storage_mb(1);
    guest.kernel.check(&config)?;
    crate::mm::saved_space_ground::save_and_check(&guest.memory)
}

/// A one-shot guest holding a copy of `guest`'s kernel (over memory of its own), to be
/// changed as a forged snapshot file could change it.
pub(super) fn copy_of(guest: &Guest) -> Guest {
    let mut copy = Guest::one_shot(b"");
    copy.kernel = guest.kernel.clone();
    copy
}

/// `value` as a snapshot file would bring it back after `change` to its serialized form.
pub(super) fn reserialized<T>(value: &T, change: impl FnOnce(&mut serde_json::Value)) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut form = serde_json::to_value(value).unwrap();
    change(&mut form);
    serde_json::from_value(form).unwrap()
}
