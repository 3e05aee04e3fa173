//! Exceptions a program raises: a page fault its mappings allow is resolved and the program
//! goes on; anything else raises the signal Linux would send, for the thread's handler or
//! to end the program.

use lambda_core::{Signal, Stop};

use crate::kernel::SigInfo;
use crate::mm::{FaultOutcome, GuestMemory, PageFault};
use crate::vm::exception::ExceptionInfo;

/// `si_code` values of fault signals.
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;
const SI_KERNEL: i32 = 0x80;
const ILL_ILLOPN: i32 = 2;
const FPE_INTDIV: i32 = 1;
const TRAP_BRKPT: i32 = 1;
const BUS_ADRALN: i32 = 1;

/// An exception the VMM could not resolve: how the program ends if no handler takes it, and
/// the signal a handler would get (`None`: none may, as for the out-of-memory kill).
pub(super) struct Unresolved {
    /// The program's end, with the fault described.
    pub stop: Stop,
    /// The signal for a handler.
    pub signal: Option<SigInfo>,
}

/// The signal of an exception other than a page fault.
fn exception_signal(info: &ExceptionInfo) -> SigInfo {
    let signo = info.signal().0;
    let (code, addr) = match info.vector {
        0 | 16 | 19 => (FPE_INTDIV, info.rip),
        1 | 3 => (TRAP_BRKPT, info.rip),
        6 => (ILL_ILLOPN, info.rip),
        17 => (BUS_ADRALN, info.rip),
        _ => (SI_KERNEL, 0),
    };
    SigInfo::fault(signo, code, addr)
}

/// Times the same page fault may come back after the VMM resolved it before the program is
/// stopped: once is normal (a fault KVM had to see again), more means the page cannot be
/// given what the access needs.
const REPEATED_FAULTS: u32 = 3;

/// Handles an exception the program raised: a page fault its mappings allow is resolved
/// (`None`: the program goes on); anything else is [`Unresolved`].
pub(super) fn resolve(
    memory: &GuestMemory,
    info: &ExceptionInfo,
    last: &mut (u64, u32),
) -> Option<Unresolved> {
    let (Some(addr), Some(error_code)) = (info.fault_address, info.error_code) else {
        return Some(Unresolved {
            stop: info.stop(),
            signal: Some(exception_signal(info)),
        });
    };
    let segv = |code| Some(SigInfo::fault(Signal::SIGSEGV.0, code, addr));
    let fault = PageFault { addr, error_code };
    match memory.page_fault(fault) {
        FaultOutcome::Resolved => {
            let key = addr ^ error_code.rotate_left(48);
            *last = if last.0 == key {
                (key, last.1.saturating_add(1))
            } else {
                (key, 1)
            };
            (last.1 > REPEATED_FAULTS).then(|| Unresolved {
                stop: info.segfault(fault, "the page fault kept coming back"),
                signal: None,
            })
        }
        FaultOutcome::Unmapped => Some(Unresolved {
            stop: info.segfault(fault, "no mapping holds the address"),
            signal: segv(SEGV_MAPERR),
        }),
        FaultOutcome::Forbidden => Some(Unresolved {
            stop: info.segfault(
                fault,
                &format!("the mapping does not allow {}", fault.needs()),
            ),
            signal: segv(SEGV_ACCERR),
        }),
        // Linux's out-of-memory killer; the ending names the memory size.
        FaultOutcome::OutOfMemory => Some(Unresolved {
            stop: Stop::Signaled {
                signal: Signal::SIGKILL,
                detail: Some("out of memory".into()),
            },
            signal: None,
        }),
    }
}
