//! Exceptions a program raises: a page fault its mappings allow is resolved and the program
//! goes on; anything else ends it with the signal Linux would send.

use lambda_core::{Signal, Stop};

use crate::mm::{FaultOutcome, GuestMemory, PageFault};
use crate::vm::exception::ExceptionInfo;

/// Times the same page fault may come back after the VMM resolved it before the program is
/// stopped: once is normal (a fault KVM had to see again), more means the page cannot be
/// given what the access needs.
const REPEATED_FAULTS: u32 = 3;

/// Handles an exception the program raised: a page fault its mappings allow is resolved
/// (`None`: the program goes on); anything else ends it with Linux's signal.
pub(super) fn resolve(
    memory: &GuestMemory,
    info: &ExceptionInfo,
    last: &mut (u64, u32),
) -> Option<Stop> {
    let (Some(addr), Some(error_code)) = (info.fault_address, info.error_code) else {
        return Some(info.stop());
    };
    let fault = PageFault { addr, error_code };
    match memory.page_fault(fault) {
        FaultOutcome::Resolved => {
            let key = addr ^ error_code.rotate_left(48);
            *last = if last.0 == key {
                (key, last.1.saturating_add(1))
            } else {
                (key, 1)
            };
            if last.1 > REPEATED_FAULTS {
                Some(info.segfault(fault, "the page fault kept coming back"))
            } else {
                None
            }
        }
        FaultOutcome::Unmapped => Some(info.segfault(fault, "no mapping holds the address")),
        FaultOutcome::Forbidden => Some(info.segfault(
            fault,
            &format!("the mapping does not allow {}", fault.needs()),
        )),
        // Linux's out-of-memory killer; the ending names the memory size.
        FaultOutcome::OutOfMemory => Some(Stop::Signaled {
            signal: Signal::SIGKILL,
            detail: Some("out of memory".into()),
        }),
    }
}
