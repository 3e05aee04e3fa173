//! The signal frame: what the run loop writes on a thread's stack to run a signal handler,
//! and reads back at `rt_sigreturn`, in Linux's x86-64 layout (`struct rt_sigframe`):
//!
//! ```text
//! frame + 0     the restorer's address (the handler's return address)
//! frame + 8     ucontext: flags, link, the alternate stack, the sigcontext (general
//!               registers, flags, segment word, error code, trap number, old mask, CR2, the
//!               FPU state's address), the signal mask to restore
//! frame + 312   siginfo (128 bytes)
//! above         the XSAVE area (4 KiB, 64-byte aligned)
//! ```
//!
//! Every access goes through the checked guest-memory accessor: a stack the frame does not
//! fit on is a fault, and the thread then dies of SIGSEGV as on Linux.

use kvm_bindings::kvm_xsave;

use crate::kernel::{AltStack, Delivery};
use crate::mm::{Fault, GuestMemory};
use crate::vm::layout::selector;
use crate::vm::vcpu::{
    UserRegs, XSAVE_BYTES, register_words, registers_from_words, xsave_bytes, xsave_from,
};

/// Bytes of the XSAVE area in the frame (`KVM_GET_XSAVE`'s region, non-compacted).
const XSAVE_LEN: u64 = XSAVE_BYTES as u64;
/// `struct ucontext` up to and with its signal mask.
const UCONTEXT_LEN: u64 = 304;
/// The return address, the ucontext and the siginfo.
const FRAME_LEN: u64 = 8 + UCONTEXT_LEN + 128;
/// Bytes below the stack pointer a leaf function may use without moving it.
const RED_ZONE: u64 = 128;
/// `uc_flags`: the sigcontext's SS is meaningful and restored strictly.
const UC_FLAGS: u64 = 0x2 | 0x4;
/// RFLAGS bits the handler starts with cleared: the direction and trap flags.
const HANDLER_CLEARS_RFLAGS: u64 = 0x400 | 0x100;

/// The fault of a frame that does not fit where it must go.
fn no_room(addr: u64) -> Fault {
    Fault {
        addr,
        len: FRAME_LEN + XSAVE_LEN,
    }
}

/// How the CPU reported a fault, for the sigcontext.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FaultContext {
    /// The exception vector.
    pub trapno: u64,
    /// Its error code.
    pub error_code: u64,
    /// For a page fault, the address.
    pub cr2: u64,
}

/// Writes the frame for `delivery` on the stack of a thread stopped at `regs` (with FPU
/// state `fpu`), on its alternate stack if the handler asks for it and the thread is not on
/// it already. Returns the registers the handler starts with, and whether the alternate
/// stack was taken.
pub(super) fn push(
    memory: &GuestMemory,
    regs: &UserRegs,
    fpu: &kvm_xsave,
    delivery: &Delivery,
    fault: FaultContext,
) -> Result<(UserRegs, bool), Fault> {
    let altstack = delivery.altstack;
    let switch = delivery.action.on_stack() && altstack.enabled() && !altstack.contains(regs.rsp);
    let top = if switch {
        altstack.sp.checked_add(altstack.size)
    } else {
        regs.rsp.checked_sub(RED_ZONE)
    }
    .ok_or(no_room(regs.rsp))?;
    let fpstate = top.checked_sub(XSAVE_LEN).ok_or(no_room(top))? & !63;
    let frame = (fpstate.checked_sub(FRAME_LEN).ok_or(no_room(top))? & !15)
        .checked_sub(8)
        .ok_or(no_room(top))?;
    if switch && frame < altstack.sp {
        // The alternate stack is too small for the frame.
        return Err(no_room(altstack.sp));
    }
    // frame < fpstate < top, so none of these can wrap; checked all the same.
    let uc = frame.checked_add(8).ok_or(no_room(frame))?;
    let info = uc.checked_add(UCONTEXT_LEN).ok_or(no_room(frame))?;
    memory.validate(frame, top.saturating_sub(frame))?;

    let mut bytes = Vec::with_capacity(FRAME_LEN as usize);
    bytes.extend_from_slice(&delivery.action.restorer.to_le_bytes());
    bytes.extend_from_slice(&UC_FLAGS.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes()); // uc_link
    bytes.extend_from_slice(&altstack.to_bytes(regs.rsp));
    for word in register_words(regs) {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    for segment in [selector::USER_CODE, 0, 0, selector::USER_DATA] {
        bytes.extend_from_slice(&segment.to_le_bytes());
    }
    for word in [
        fault.error_code,
        fault.trapno,
        delivery.old_mask,
        fault.cr2,
        fpstate,
    ] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.extend_from_slice(&[0; 64]); // reserved
    bytes.extend_from_slice(&delivery.old_mask.to_le_bytes()); // uc_sigmask
    bytes.extend_from_slice(&delivery.info.to_bytes());
    debug_assert_eq!(bytes.len() as u64, FRAME_LEN);
    memory.write(frame, &bytes)?;
    memory.write(fpstate, &xsave_bytes(fpu))?;

    let mut handler = *regs;
    handler.rip = delivery.action.handler;
    handler.rsp = frame;
    handler.rdi = u64::from(delivery.info.signo.unsigned_abs());
    handler.rsi = info;
    handler.rdx = uc;
    handler.rax = 0;
    handler.rflags &= !HANDLER_CLEARS_RFLAGS;
    Ok((handler, switch))
}

/// What `rt_sigreturn` restores.
pub(super) struct Restored {
    /// The registers to go on from.
    pub regs: UserRegs,
    /// The FPU state, if the frame points at one.
    pub fpu: Option<Box<kvm_xsave>>,
    /// The signal mask.
    pub mask: u64,
    /// The alternate stack.
    pub altstack: AltStack,
}

/// Reads the frame whose ucontext is at `uc` (the stack pointer at `rt_sigreturn`, the
/// handler's `ret` having popped the return address). It holds every general register.
pub(super) fn pop(memory: &GuestMemory, uc: u64) -> Result<Restored, Fault> {
    let bytes = memory.read_vec(uc, UCONTEXT_LEN)?;
    let word = |index: usize| {
        let at = index * 8;
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    // uc_flags (0), uc_link (1), uc_stack (2..5), sigcontext from word 5.
    let mut stack = [0u8; 24];
    stack.copy_from_slice(&bytes[16..40]);
    let context = |index: usize| word(5 + index);
    let regs = registers_from_words(std::array::from_fn(context));
    let fpstate = context(23);
    let mask = word(37);
    let fpu = if fpstate == 0 {
        None
    } else {
        Some(xsave_from(&memory.read_vec(fpstate, XSAVE_LEN)?))
    };
    Ok(Restored {
        regs,
        fpu,
        mask,
        altstack: AltStack::from_bytes(&stack),
    })
}
