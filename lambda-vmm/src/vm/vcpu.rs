//! The vCPU run loop: runs the guest until something needs the VMM (a syscall, an exception,
//! the deadline) and turns KVM's exits into [`Exit`]s. Emulates the syscall return.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kvm_bindings::{kvm_regs, kvm_sregs, kvm_xsave};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use super::cpu;
use super::error::VmError;
use super::exception::{ExceptionInfo, has_error_code};
use super::kick::{Deadline, RunningVcpu};
use super::layout::{self, selector};
use crate::mm::physical::{KERNEL_BASE, KERNEL_SIZE, PhysicalMemory};

/// The TSC's MSR (`IA32_TIME_STAMP_COUNTER`).
const MSR_TSC: u32 = 0x10;

/// Why the guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The guest executed `syscall`; the registers are in [`Vcpu::syscall`].
    Syscall,
    /// A CPU exception at CPL3.
    Exception(ExceptionInfo),
    /// The deadline passed.
    DeadlineReached,
    /// The time slice passed, or another thread asked the vCPU to stop (see [`Vcpu::run`]);
    /// the program was stopped wherever it was ([`Vcpu::preempted_regs`]).
    Preempted,
    /// `KVM_RUN` failed with `EFAULT`: a page the guest was using is being revoked by another
    /// thread of the VMM (`docs/platform.md`, "vCPUs"). Run again once that is done.
    MemoryBusy,
    /// The guest left the CPU in a state it cannot continue from (a triple fault, or an exit
    /// a CPL3 program cannot cause on purpose); the text says which. The program is over.
    Wrecked(String),
}

/// A syscall as the guest made it: number and the six argument registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SyscallArgs {
    /// The syscall number (`rax`).
    pub number: u64,
    /// `rdi, rsi, rdx, r10, r8, r9`.
    pub args: [u64; 6],
    /// The caller's stack pointer (`sigaltstack` needs it).
    pub stack_pointer: u64,
}

/// RFLAGS bits a program may set for itself on syscall return (as SYSRET allows): clears
/// IOPL, NT, RF and VM so a guest cannot raise its I/O privilege through `r11`.
const USER_RFLAGS_MASK: u64 = 0x3c_0fd5;

/// Where the vCPU stopped last, which decides how the VMM resumes a program on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// At ring 0 in the VMM's stubs: a syscall through `syscall` (the return address is in
    /// `rcx`), an exception, or a kick that landed there.
    Stub,
    /// At ring 3 in the program: a syscall through `out SYSCALL_PORT, al` at a patched site
    /// (`rip` is already past it), or a kick.
    Direct,
}

/// A program thread's registers as it runs them at ring 3: what a thread that is not on the
/// vCPU keeps, and what [`Vcpu::resume`] puts back.
pub type UserRegs = kvm_regs;

/// A thread's 18 general registers as a signal frame's sigcontext orders them (`r8` to
/// `r15`, `rdi`, `rsi`, `rbp`, `rbx`, `rdx`, `rax`, `rcx`, `rsp`, `rip`, then `rflags`): how
/// signal frames and snapshot files hold them.
pub fn register_words(regs: &UserRegs) -> [u64; 18] {
    [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.rflags,
    ]
}

/// The registers [`register_words`] gave.
pub fn registers_from_words(words: [u64; 18]) -> UserRegs {
    let [
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        rdi,
        rsi,
        rbp,
        rbx,
        rdx,
        rax,
        rcx,
        rsp,
        rip,
        rflags,
    ] = words;
    kvm_regs {
        rax,
        rbx,
        rcx,
        rdx,
        rsi,
        rdi,
        rsp,
        rbp,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        rip,
        rflags,
    }
}

/// Bytes of the XSAVE region `KVM_GET_XSAVE` fills (the whole of a [`Vcpu::save_fpu`]).
pub const XSAVE_BYTES: usize = 4096;

/// A saved FPU/SSE/AVX state as its [`XSAVE_BYTES`] bytes (little-endian words).
pub fn xsave_bytes(state: &kvm_xsave) -> Vec<u8> {
    state
        .region
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect()
}

/// The state [`xsave_bytes`] gave (missing bytes read as zero, extra ones are ignored).
pub fn xsave_from(bytes: &[u8]) -> Box<kvm_xsave> {
    let mut state = Box::<kvm_xsave>::default();
    for (word, chunk) in state.region.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    state
}

/// The bytes of `syscall`, and of `out SYSCALL_PORT, al` that replaces it: both two bytes.
pub const SYSCALL_INSTRUCTION: [u8; 2] = [0x0f, 0x05];
/// See [`SYSCALL_INSTRUCTION`].
pub const DIRECT_SYSCALL_INSTRUCTION: [u8; 2] = [0xe6, layout::SYSCALL_PORT as u8];

/// One vCPU and its counters.
pub struct Vcpu {
    fd: VcpuFd,
    /// Which of the VM's vCPUs it is: its TSS and kernel stack.
    slot: usize,
    /// The special registers of ring 3, as [`Vcpu::start`] set them.
    user_sregs: kvm_sregs,
    /// Whether [`Vcpu::start`] has set up its special registers and MSRs.
    configured: bool,
    /// Whether other vCPUs run the program too. They could then rewrite this vCPU's kernel
    /// stack (it must be writable at ring 3 under PVM) between the VMM writing a return frame
    /// and the stub's `iretq` reading it, and so return to ring 0; returns from a stub load
    /// the ring-3 state through KVM instead.
    stack_shared: bool,
    regs: kvm_regs,
    /// After an exception, the program's registers where it faulted.
    fault_regs: Option<UserRegs>,
    entry: Entry,
    exits: u64,
    direct_syscalls: u64,
    tsc_offset: i64,
    /// A run ended in a state the guest cannot continue from ([`Exit::Wrecked`]): the vCPU
    /// is not made new for another program.
    wrecked: bool,
}

impl Vcpu {
    pub(super) fn new(mut fd: VcpuFd, slot: usize) -> Result<Vcpu, VmError> {
        // KVM copies the general registers into kvm_run at every exit and takes them back
        // from there when marked dirty: a syscall then needs no GET_REGS/SET_REGS ioctls.
        fd.set_sync_valid_reg(SyncReg::Register);
        crate::vdso::guest_tsc_rate(fd.get_tsc_khz().map_or(0, u64::from));
        let tsc_offset = guest_tsc_offset(&fd)?;
        Ok(Vcpu {
            fd,
            slot,
            user_sregs: kvm_sregs::default(),
            configured: false,
            stack_shared: false,
            regs: kvm_regs::default(),
            fault_regs: None,
            entry: Entry::Stub,
            exits: 0,
            direct_syscalls: 0,
            tsc_offset,
            wrecked: false,
        })
    }

    /// The guest's TSC minus the host's (0 on PVM hosts).
    pub fn tsc_offset(&self) -> i64 {
        self.tsc_offset
    }

    /// Sets up long mode at CPL3 to start at `entry` with stack pointer `stack`. The special
    /// registers and MSRs, the same for every program, are set once; a vCPU set up before
    /// (a spare VM's) only takes the new registers.
    pub fn start(&mut self, entry: u64, stack: u64) -> Result<(), VmError> {
        if !self.configured {
            self.user_sregs = cpu::configure_vcpu(&self.fd, self.slot, entry, stack)
                .map_err(VmError::kvm("vCPU setup"))?;
            self.configured = true;
        }
        self.entry = Entry::Direct;
        self.regs = kvm_regs {
            rip: entry,
            rsp: stack,
            rflags: 0x2,
            ..Default::default()
        };
        self.fd.sync_regs_mut().regs = self.regs;
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        Ok(())
    }

    /// Makes the vCPU as a new one set up by [`Vcpu::start`] is, for another program: special
    /// registers, `XCR0` and MSRs set again (`cpu::configure_vcpu`), general registers
    /// cleared, the FPU/SSE/AVX state reset, no exception, interrupt or NMI pending, counters
    /// at zero. Refused for a vCPU whose run ended wrecked (a triple fault).
    pub fn reset(&mut self) -> Result<(), VmError> {
        if self.wrecked {
            return Err(VmError::kvm("reset a wrecked vCPU")(
                kvm_ioctls::Error::new(libc::EIO),
            ));
        }
        self.configured = false;
        self.start(0, 0)?;
        self.reset_fpu()?;
        let events = kvm_bindings::kvm_vcpu_events {
            flags: kvm_bindings::KVM_VCPUEVENT_VALID_NMI_PENDING
                | kvm_bindings::KVM_VCPUEVENT_VALID_SHADOW,
            ..Default::default()
        };
        self.fd
            .set_vcpu_events(&events)
            .map_err(VmError::kvm("KVM_SET_VCPU_EVENTS"))?;
        self.fd.set_kvm_immediate_exit(0);
        self.stack_shared = false;
        self.fault_regs = None;
        self.exits = 0;
        self.direct_syscalls = 0;
        Ok(())
    }

    /// Which of the VM's vCPUs this is (0 for the first).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Says whether other vCPUs run the program too (see the field `stack_shared`).
    pub fn set_stack_shared(&mut self, shared: bool) {
        self.stack_shared = shared;
    }

    /// VM exits so far.
    pub fn exits(&self) -> u64 {
        self.exits
    }

    /// Syscalls so far that entered directly from a patched site, skipping ring 0.
    pub fn direct_syscalls(&self) -> u64 {
        self.direct_syscalls
    }

    /// Sets the FS base (the thread pointer glibc and Rust use for TLS).
    pub fn set_fs_base(&mut self, base: u64) -> Result<(), VmError> {
        cpu::set_msrs(&self.fd, &[(cpu::MSR_FS_BASE, base)])
            .map_err(VmError::kvm("set FS base"))?;
        // `KVM_SET_SREGS` writes the FS base too (the FS segment's base).
        self.user_sregs.fs.base = base;
        Ok(())
    }

    /// The syscall the guest is making, after [`Exit::Syscall`].
    pub fn syscall(&self) -> SyscallArgs {
        let r = &self.regs;
        SyscallArgs {
            number: r.rax,
            args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
            stack_pointer: r.rsp,
        }
    }

    /// For a syscall that came through the ring-0 stub, the address of its `syscall`
    /// instruction (which may be patched to enter directly next time).
    pub fn stub_syscall_site(&self) -> Option<u64> {
        (self.entry == Entry::Stub).then(|| self.regs.rcx.wrapping_sub(2))
    }

    /// After [`Exit::Syscall`], the program's registers as its syscall returns them (`rax`,
    /// the result, left to the caller): `rip` past the instruction, and `rcx`/`r11` holding
    /// the return address and flags, as `syscall` leaves them.
    pub fn syscall_return_regs(&self) -> UserRegs {
        let mut regs = self.regs;
        if self.entry == Entry::Stub {
            regs.rip = regs.rcx;
            regs.rflags = regs.r11;
        }
        regs.rflags = (regs.rflags & USER_RFLAGS_MASK) | 0x2;
        regs.rcx = regs.rip;
        regs.r11 = regs.rflags;
        regs
    }

    /// After [`Exit::Preempted`], the program's registers, from which it goes on as if it had
    /// not been stopped. Stopped at ring 3, they are the vCPU's. Stopped in a stub, they are
    /// the ring-3 state the stub came from or returns to: before the syscall stub's `out`, the
    /// `syscall` instruction again (the call was not made yet); in an exception stub or at the
    /// syscall stub's `iretq`, the frame on the kernel stack (an exception not yet reported
    /// happens again when the instruction runs again).
    pub fn preempted_regs(&self, physical: &PhysicalMemory) -> UserRegs {
        let regs = self.regs;
        if self.entry == Entry::Direct {
            return regs;
        }
        if regs.rip == layout::virt(layout::SYSCALL_ENTRY) {
            return UserRegs {
                rip: regs.rcx.wrapping_sub(2),
                rflags: regs.r11,
                ..regs
            };
        }
        let stubs = layout::virt(layout::EXCEPTION_STUBS);
        let frame_at = match regs.rip.checked_sub(stubs) {
            Some(offset) if offset < 32 * layout::EXCEPTION_STUB_SIZE => {
                let vector = (offset / layout::EXCEPTION_STUB_SIZE) as u8;
                let at = offset % layout::EXCEPTION_STUB_SIZE;
                // Before `out` and `add rsp, 8`, the error code is still on the stack.
                if has_error_code(vector) && at < 6 {
                    regs.rsp.wrapping_add(8)
                } else {
                    regs.rsp
                }
            }
            _ => regs.rsp,
        };
        self.ring3_frame(physical, frame_at)
            .map_or(regs, |(rip, rflags, rsp)| UserRegs {
                rip,
                rflags,
                rsp,
                ..regs
            })
    }

    /// The `iretq` frame at `at` on this vCPU's kernel stack, if it returns to ring 3: `rip`,
    /// `rflags` and `rsp`.
    fn ring3_frame(&self, physical: &PhysicalMemory, at: u64) -> Option<(u64, u64, u64)> {
        let word = |index: u64| self.stack_word(physical, at.checked_add(index * 8)?);
        (word(1)? == u64::from(selector::USER_CODE)).then_some(())?;
        Some((word(0)?, word(2)?, word(3)?))
    }

    /// The word at `addr` (virtual) on this vCPU's kernel stack, if all 8 bytes lie on it.
    fn stack_word(&self, physical: &PhysicalMemory, addr: u64) -> Option<u64> {
        let (bottom, top) = layout::kernel_stack(self.slot);
        let end = addr.checked_add(8)?;
        (addr >= layout::virt(bottom) && end <= layout::virt(top))
            .then(|| physical.read_u64(layout::phys(addr)))
    }

    /// Puts the program's registers `regs` (a ring-3 state: [`Vcpu::syscall_return_regs`],
    /// [`Vcpu::preempted_regs`] or one made from them) on the vCPU, to run from at the next
    /// [`Vcpu::run`].
    ///
    /// Stopped at ring 3, the vCPU takes them as they are. Stopped in a ring-0 stub, it
    /// returns through the stub's `iretq`: the VMM writes the return frame on the kernel stack,
    /// so only the general registers change (an in-guest `sysretq` shuts the VM down on PVM
    /// hosts, and `KVM_SET_SREGS` at every syscall would be slower).
    ///
    /// With other vCPUs running the program (see [`Vcpu::set_stack_shared`]), a return from a
    /// stub loads the ring-3 special registers through KVM instead (one more ioctl).
    pub fn resume(&mut self, physical: &PhysicalMemory, regs: &UserRegs) -> Result<(), VmError> {
        let mut next = *regs;
        next.rflags = (regs.rflags & USER_RFLAGS_MASK) | 0x2;
        if self.entry == Entry::Stub && self.stack_shared {
            self.fd
                .set_sregs(&self.user_sregs)
                .map_err(VmError::kvm("KVM_SET_SREGS"))?;
            self.entry = Entry::Direct;
        }
        if self.entry == Entry::Stub {
            let frame_at = layout::kernel_stack(self.slot).1 - 5 * 8;
            let frame = [
                next.rip,
                u64::from(selector::USER_CODE),
                next.rflags,
                next.rsp,
                u64::from(selector::USER_DATA),
            ];
            let mut bytes = [0u8; 5 * 8];
            for (slot, word) in bytes.chunks_exact_mut(8).zip(frame) {
                slot.copy_from_slice(&word.to_le_bytes());
            }
            physical.write(frame_at, &bytes);
            next.rsp = layout::virt(frame_at);
            next.rip = layout::virt(layout::SYSCALL_RETURN);
            // The stub runs with interrupts and traps as the VMM set them up; `iretq` loads
            // the program's flags from the frame.
            next.rflags = self.regs.rflags;
        }
        self.regs = next;
        self.fd.sync_regs_mut().regs = next;
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        Ok(())
    }

    /// After an [`Exit::Exception`] the VMM resolved (a page fault it mapped), lets the program
    /// run the faulting instruction again: the stub's own `iretq` does it, unless other vCPUs
    /// could have rewritten the frame (see [`Vcpu::set_stack_shared`]), when the program's
    /// registers are put back through KVM. Returns `false` if that is needed and the frame
    /// did not describe a ring-3 program (something other than the CPU wrote it): the program
    /// cannot go on.
    pub fn continue_after_fault(&mut self, physical: &PhysicalMemory) -> Result<bool, VmError> {
        if !self.stack_shared {
            return Ok(true);
        }
        match self.fault_regs {
            Some(regs) => self.resume(physical, &regs).map(|()| true),
            None => Ok(false),
        }
    }

    /// After [`Exit::Exception`], the program's registers at the faulting instruction, as the
    /// CPU saved them (`None` if the stub was entered without an exception frame).
    pub fn exception_regs(&self) -> Option<UserRegs> {
        self.fault_regs
    }

    /// Runs a touch stub ([`layout::TOUCH_READ_STUB`], or the writing one) at ring 3 over
    /// `addresses` (up to [`layout::TOUCH_REGISTERS`]; the stub's other registers repeat the
    /// first), so that KVM builds its translations of those pages now rather than at the
    /// program's first touches. For a vCPU holding no thread (a machine restored ahead, before
    /// it is handed out); the thread put on it later replaces every register. Returns whether
    /// the stub ran to its end: `false` if the vCPU was not at ring 3 to begin with or stopped
    /// anywhere else (a fault, the 100 ms guard), and the caller should touch no more. The
    /// exits are not counted in [`Vcpu::exits`].
    pub fn touch(
        &mut self,
        physical: &PhysicalMemory,
        addresses: &[u64],
        write: bool,
    ) -> Result<bool, VmError> {
        let Some(&first) = addresses.first() else {
            return Ok(true);
        };
        if self.entry != Entry::Direct || addresses.len() > layout::TOUCH_REGISTERS {
            return Ok(false);
        }
        let stub = layout::virt(if write {
            layout::TOUCH_WRITE_STUB
        } else {
            layout::TOUCH_READ_STUB
        });
        // sigcontext's order: the fifteen registers the stub reads come first, then `rsp`,
        // `rip` and `rflags`.
        let mut words = [first; 18];
        words[..addresses.len()].copy_from_slice(addresses);
        words[layout::TOUCH_REGISTERS..].copy_from_slice(&[0, stub, 0x2]);
        self.regs = registers_from_words(words);
        self.fd.sync_regs_mut().regs = self.regs;
        self.fd.set_sync_dirty_reg(SyncReg::Register);
        let (exits, direct) = (self.exits, self.direct_syscalls);
        let guard = Deadline::arm(Instant::now() + std::time::Duration::from_millis(100));
        let exit = self.run(physical, &guard, None, &AtomicBool::new(false));
        (self.exits, self.direct_syscalls) = (exits, direct);
        let end = stub.saturating_add(cpu::touch_stub_len(write));
        Ok(exit? == Exit::Syscall && self.entry == Entry::Direct && self.regs.rip == end)
    }

    /// The FPU, SSE and AVX state of the thread on the vCPU (a thread switch keeps it).
    pub fn save_fpu(&self) -> Result<Box<kvm_xsave>, VmError> {
        self.fd
            .get_xsave()
            .map(Box::new)
            .map_err(VmError::kvm("KVM_GET_XSAVE"))
    }

    /// Loads a thread's FPU, SSE and AVX state saved by [`Vcpu::save_fpu`].
    pub fn load_fpu(&self, state: &kvm_xsave) -> Result<(), VmError> {
        // SAFETY: `state` is a whole `kvm_xsave`, whose 4 KiB `region` is all that
        // KVM_SET_XSAVE reads (this VMM never enables KVM_CAP_XSAVE2, which would let a larger
        // XSAVE area run into `extra`), and the ioctl only reads it.
        unsafe { self.fd.set_xsave(state) }.map_err(VmError::kvm("KVM_SET_XSAVE"))
    }

    /// Puts the FPU, SSE and AVX state back to what a new program starts with (`execve`):
    /// x87 and SSE at their reset values (control word 0x37f, MXCSR 0x1f80), every other
    /// component in its initial state.
    pub fn reset_fpu(&self) -> Result<(), VmError> {
        let mut state = kvm_xsave::default();
        // The legacy area: FCW in the first word, MXCSR at byte 24; the XSAVE header's
        // XSTATE_BV at byte 512 says only x87 and SSE are given (the rest start clear).
        state.region[0] = 0x037f;
        state.region[6] = 0x1f80;
        state.region[128] = 0b11;
        self.load_fpu(&state)
    }

    /// Runs the guest until it needs the VMM, `deadline` passes, the time slice `slice` (if
    /// the caller armed one) ends, or another thread sets `stop` and kicks this one
    /// ([`crate::vm::kick::VcpuThread::kick`]); `stop` is cleared when seen.
    pub fn run(
        &mut self,
        physical: &PhysicalMemory,
        deadline: &Deadline,
        slice: Option<&Deadline>,
        stop: &AtomicBool,
    ) -> Result<Exit, VmError> {
        let _running = RunningVcpu::enter(self.fd.get_kvm_run())?;
        loop {
            let now = Instant::now();
            if now >= deadline.at() {
                return Ok(Exit::DeadlineReached);
            }
            let sliced = slice.is_some_and(|slice| now >= slice.at());
            let stopped = stop.swap(false, Ordering::AcqRel);
            let preempt = sliced || stopped;
            if preempt && self.exception_in_flight()? {
                // A kick stopped KVM between raising an exception for the program's
                // instruction and delivering it. KVM delivers it at the next entry, wherever
                // `rip` points then: preempted now, the vCPU could be given a signal handler
                // or another thread, which would take this one's fault. It is delivered first
                // (the stub reports it at once); a stop is seen at the next call.
                if stopped {
                    stop.store(true, Ordering::Release);
                }
            } else if preempt {
                // KVM stores the registers in kvm_run at every return from KVM_RUN, the
                // EINTR of a kick included.
                self.regs = self.fd.sync_regs().regs;
                let stub = layout::virt(KERNEL_BASE)..layout::virt(KERNEL_BASE + KERNEL_SIZE);
                self.entry = if stub.contains(&self.regs.rip) {
                    Entry::Stub
                } else {
                    Entry::Direct
                };
                return Ok(Exit::Preempted);
            }
            let exit = self.fd.run();
            self.exits += 1;
            match exit {
                Ok(VcpuExit::IoOut(layout::SYSCALL_PORT, _)) => {
                    self.regs = self.fd.sync_regs_mut().regs;
                    self.entry = if self.regs.rip == layout::virt(layout::SYSCALL_RETURN) {
                        Entry::Stub
                    } else {
                        self.direct_syscalls += 1;
                        Entry::Direct
                    };
                    return Ok(Exit::Syscall);
                }
                Ok(VcpuExit::IoOut(port, _))
                    if (layout::EXCEPTION_PORTS..layout::EXCEPTION_PORTS + 32).contains(&port) =>
                {
                    let vector = (port - layout::EXCEPTION_PORTS) as u8;
                    return self.exception(physical, vector).map(Exit::Exception);
                }
                Ok(VcpuExit::Shutdown) => {
                    self.wrecked = true;
                    return Ok(Exit::Wrecked(
                        "triple fault: the guest's CPU state became unusable".into(),
                    ));
                }
                Ok(other) => {
                    self.wrecked = true;
                    return Ok(Exit::Wrecked(format!("unexpected VM exit {other:?}")));
                }
                Err(e) if e.errno() == libc::EINTR => {
                    // A kick: ours at the deadline, or a stale one from an earlier run.
                    self.fd.set_kvm_immediate_exit(0);
                }
                Err(e) if e.errno() == libc::EAGAIN => {}
                Err(e) if e.errno() == libc::EFAULT => return Ok(Exit::MemoryBusy),
                Err(e) => return Err(VmError::kvm("KVM_RUN")(e)),
            }
        }
    }

    /// Whether KVM holds an exception for the guest that it has not delivered yet (raised,
    /// or injected into an entry a kick cut short): it goes to the guest at the next entry.
    fn exception_in_flight(&self) -> Result<bool, VmError> {
        let events = self
            .fd
            .get_vcpu_events()
            .map_err(VmError::kvm("KVM_GET_VCPU_EVENTS"))?;
        Ok(events.exception.injected != 0 || events.exception.pending != 0)
    }

    /// What the exception stub for `vector` reported: the frame the CPU pushed on the
    /// kernel stack. A stub entered by a jump from ring 3 (the pages are executable by the
    /// program) leaves no such frame; it then reads as a fault at address 0, and resuming
    /// it is as harmless as any ring-3 `iretq`.
    fn exception(
        &mut self,
        physical: &PhysicalMemory,
        vector: u8,
    ) -> Result<ExceptionInfo, VmError> {
        let regs = self.fd.sync_regs().regs;
        let mut cursor = regs.rsp;
        let mut pop = || {
            let value = self.stack_word(physical, cursor);
            cursor = cursor.wrapping_add(8);
            value
        };
        let error_code = if has_error_code(vector) { pop() } else { None };
        let rip = pop().unwrap_or(0);
        let from_ring3 = pop() == Some(u64::from(selector::USER_CODE));
        let rflags = pop();
        let rsp = pop();
        self.regs = regs;
        self.entry = Entry::Stub;
        // Only a frame the CPU pushed for ring 3 describes the program.
        self.fault_regs = rflags
            .zip(rsp)
            .filter(|_| from_ring3)
            .map(|(rflags, rsp)| UserRegs {
                rip,
                rflags,
                rsp,
                ..regs
            });
        let fault_address = if vector == 14 {
            let sregs = self.fd.get_sregs().map_err(VmError::kvm("KVM_GET_SREGS"))?;
            Some(sregs.cr2)
        } else {
            None
        };
        Ok(ExceptionInfo {
            vector,
            error_code,
            rip,
            fault_address,
        })
    }
}

/// The guest's TSC minus the host's, read once (`IA32_TSC` between two host reads).
fn guest_tsc_offset(fd: &VcpuFd) -> Result<i64, VmError> {
    let mut msrs = kvm_bindings::Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
        index: MSR_TSC,
        ..Default::default()
    }])
    .map_err(|_| VmError::kvm("KVM_GET_MSRS")(kvm_ioctls::Error::new(libc::E2BIG)))?;
    let before = crate::host::tsc();
    let read = fd
        .get_msrs(&mut msrs)
        .map_err(VmError::kvm("KVM_GET_MSRS"))?;
    let after = crate::host::tsc();
    if read != 1 {
        return Ok(0);
    }
    let guest = msrs.as_slice()[0].data;
    let host = before / 2 + after / 2;
    Ok(guest.wrapping_sub(host) as i64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::vm::MicroVm;

    /// A kick can stop KVM after it raised an exception for the program's instruction and
    /// before it delivered it. Preempted then, the vCPU would be given a signal handler or
    /// another thread, and KVM would deliver the exception there (found as Go's `SIGURG`
    /// handler taking a nil dereference's page fault, `docs/platform.md`). The exception is
    /// delivered first, at the instruction that raised it; the stop is seen at the next call.
    #[test]
    #[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
    fn an_exception_in_flight_is_delivered_before_the_vcpu_is_preempted() {
        let mut vm = MicroVm::new(64 << 20).expect("a VM (needs /dev/kvm)");
        let physical = vm.memory.physical();
        let vcpu = &mut vm.vcpus[0];
        // Any ring-3 address will do: the exception comes before its instruction runs.
        let instruction = layout::virt(layout::SYSCALL_ENTRY);
        vcpu.start(instruction, 0x7000).expect("start");
        // What KVM held in the case found: a page fault for a read of address 0 at ring 3.
        let mut events = vcpu.fd.get_vcpu_events().expect("KVM_GET_VCPU_EVENTS");
        events.exception.injected = 1;
        events.exception.nr = 14;
        events.exception.has_error_code = 1;
        events.exception.error_code = 4;
        vcpu.fd
            .set_vcpu_events(&events)
            .expect("KVM_SET_VCPU_EVENTS");
        let deadline = Deadline::arm(Instant::now() + Duration::from_secs(10));
        let stop = AtomicBool::new(true);

        let exit = vcpu.run(physical, &deadline, None, &stop).expect("run");
        let Exit::Exception(info) = exit else {
            panic!("preempted with the exception still in flight: {exit:?}");
        };
        assert_eq!((info.vector, info.error_code), (14, Some(4)));
        assert_eq!(info.rip, instruction, "delivered at its own instruction");
        assert!(!vcpu.exception_in_flight().expect("events"));
        assert!(stop.load(Ordering::Acquire), "the stop is still asked for");

        let exit = vcpu.run(physical, &deadline, None, &stop).expect("run");
        assert_eq!(exit, Exit::Preempted);
    }
}
