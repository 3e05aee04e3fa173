//! Signals: each signal's action (shared by the process's threads), each thread's mask,
//! alternate stack and pending signals, and the syscalls that set and send them.
//!
//! The kernel decides; the run loop delivers. A signal sent to a thread is queued on it if it
//! has a handler (or is blocked), ends the program at once if its default action does, and
//! is dropped if ignored. Before the run loop resumes a thread it asks [`Kernel::take_signal`]
//! for a deliverable one and, for a handler, builds the signal frame on the thread's stack
//! (`machine/signal_frame.rs`); a blocked syscall of a thread with a deliverable signal is
//! interrupted (`EINTR`, or restarted under `SA_RESTART`). A fault the VMM cannot resolve
//! goes to the thread's handler through [`Kernel::fault`], or ends the program.

use super::{Errno, Kernel, ProcessEnd, Step, SysResult, abi};
use crate::mm::GuestMemory;

/// Signal numbers run from 1 to this.
pub const SIGNAL_COUNT: usize = 64;
const SIGKILL: i32 = 9;
const SIGSTOP: i32 = 19;
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
/// `sa_flags` bits.
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SA_RESTART: u64 = 0x1000_0000;
/// `SIG_BLOCK`, `SIG_UNBLOCK`, `SIG_SETMASK`.
const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
/// `ss_flags` of `sigaltstack`.
pub const SS_ONSTACK: i32 = 1;
/// `ss_flags`: no alternate stack.
pub const SS_DISABLE: i32 = 2;
const SS_AUTODISARM: i32 = 1 << 31;
/// The smallest alternate stack Linux accepts (`MINSIGSTKSZ`).
const MINSIGSTKSZ: u64 = 2048;
/// `si_code` of a signal sent with `kill`, and with `tkill`/`tgkill`.
const SI_USER: i32 = 0;
const SI_TKILL: i32 = -6;
/// Signals queued on one thread at most; a real-time signal past it answers `EAGAIN`.
const MAX_PENDING: usize = 64;
/// The bits of the signals that can be neither blocked nor caught.
const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);
/// Syscalls that `SA_RESTART` restarts after a handler (the rest answer `EINTR`): reads,
/// writes and futex waits, as the programs this kernel runs make them.
const RESTARTABLE: &[u64] = &[0, 1, 17, 18, 19, 20, 44, 45, 46, 47, 202];

const fn bit(signal: i32) -> u64 {
    1u64 << (signal.unsigned_abs().saturating_sub(1) & 63)
}

/// A signal's action, as `struct sigaction` holds it for the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SigAction {
    /// `SIG_DFL` (0), `SIG_IGN` (1) or the handler's address.
    pub handler: u64,
    /// `SA_*` flags.
    pub flags: u64,
    /// Where the handler returns to (`SA_RESTORER`): code that calls `rt_sigreturn`.
    pub restorer: u64,
    /// Signals blocked while the handler runs.
    pub mask: u64,
}

impl SigAction {
    /// Whether a handler runs for it.
    fn catches(&self) -> bool {
        self.handler != SIG_DFL && self.handler != SIG_IGN
    }

    /// Whether the handler wants the alternate stack (`SA_ONSTACK`).
    pub fn on_stack(&self) -> bool {
        self.flags & 0x0800_0000 != 0
    }

    /// Whether the handler returns through a restorer (`SA_RESTORER`; x86-64 has no other
    /// way back).
    pub fn has_restorer(&self) -> bool {
        self.flags & 0x0400_0000 != 0
    }
}

/// What a handler learns of its signal (`siginfo_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SigInfo {
    /// The signal.
    pub signo: i32,
    /// `si_code`: how it was sent (`SI_USER`, `SI_TKILL`) or what the fault was
    /// (`SEGV_MAPERR`, ...).
    pub code: i32,
    /// For a fault, the address (`si_addr`); for a sent signal, the sender's pid.
    pub addr: u64,
}

impl SigInfo {
    /// A fault's signal: `code` and the faulting address.
    pub fn fault(signo: i32, code: i32, addr: u64) -> SigInfo {
        SigInfo { signo, code, addr }
    }

    /// The 128 bytes of `siginfo_t`.
    pub fn to_bytes(self) -> [u8; 128] {
        let mut bytes = [0u8; 128];
        bytes[0..4].copy_from_slice(&self.signo.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.code.to_le_bytes());
        // si_addr for a fault; si_pid (and si_uid 0) for a sent signal: the same place.
        bytes[16..24].copy_from_slice(&self.addr.to_le_bytes());
        bytes
    }
}

/// A thread's alternate signal stack (`stack_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AltStack {
    /// Its lowest address.
    pub sp: u64,
    /// `SS_DISABLE`, or 0 (and `SS_AUTODISARM`).
    pub flags: i32,
    /// Its size.
    pub size: u64,
}

impl Default for AltStack {
    fn default() -> AltStack {
        AltStack {
            sp: 0,
            flags: SS_DISABLE,
            size: 0,
        }
    }
}

impl AltStack {
    /// Whether there is one.
    pub fn enabled(&self) -> bool {
        self.flags & SS_DISABLE == 0
    }

    /// Whether `sp` is on it.
    pub fn contains(&self, sp: u64) -> bool {
        self.enabled() && sp > self.sp && sp <= self.sp.saturating_add(self.size)
    }

    /// The 24 bytes of `stack_t`, with `SS_ONSTACK` if `sp` is on it.
    pub fn to_bytes(self, sp: u64) -> [u8; 24] {
        let flags = if self.contains(sp) {
            SS_ONSTACK
        } else {
            self.flags
        };
        let mut bytes = [0u8; 24];
        bytes[0..8].copy_from_slice(&self.sp.to_le_bytes());
        bytes[8..12].copy_from_slice(&flags.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.size.to_le_bytes());
        bytes
    }

    /// The stack `sigaltstack` and `rt_sigreturn` set from `given`, as the program wrote
    /// it: disabled (`SS_DISABLE`), or one of at least `MINSIGSTKSZ` bytes that keeps only
    /// `SS_AUTODISARM` of its flags. `EINVAL` for a mode other than 0, `SS_ONSTACK` and
    /// `SS_DISABLE`, `ENOMEM` for a smaller stack, as Linux's `do_sigaltstack`.
    fn requested(given: AltStack) -> Result<AltStack, Errno> {
        let mode = given.flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno(libc::EINVAL));
        }
        if mode == SS_DISABLE {
            Ok(AltStack::default())
        } else if given.size < MINSIGSTKSZ {
            Err(Errno(libc::ENOMEM))
        } else {
            Ok(AltStack {
                flags: given.flags & SS_AUTODISARM,
                ..given
            })
        }
    }

    /// Checks an alternate stack read back from a snapshot file: one
    /// [`AltStack::requested`] could have made, which it gives back unchanged. Says what
    /// does not hold.
    fn check(&self) -> Result<(), String> {
        if AltStack::requested(*self) == Ok(*self) {
            Ok(())
        } else {
            Err(format!(
                "its alternate stack (flags {:#x}, {} bytes) is not one sigaltstack sets",
                self.flags, self.size
            ))
        }
    }

    /// Reads `stack_t`.
    pub fn from_bytes(bytes: &[u8; 24]) -> AltStack {
        let word = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes.get(at..at.saturating_add(8)).unwrap_or(&[0; 8]));
            u64::from_le_bytes(word)
        };
        let mut flags = [0u8; 4];
        flags.copy_from_slice(bytes.get(8..12).unwrap_or(&[0; 4]));
        AltStack {
            sp: word(0),
            flags: i32::from_le_bytes(flags),
            size: word(16),
        }
    }
}

/// A signal to run a handler for: what the run loop needs to build the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The signal and its details.
    pub info: SigInfo,
    /// Its action.
    pub action: SigAction,
    /// The thread's mask before the handler (restored by `rt_sigreturn`).
    pub old_mask: u64,
    /// The thread's alternate stack.
    pub altstack: AltStack,
}

/// What becomes of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Run its handler.
    Deliver(Delivery),
    /// End the program with it.
    Terminate(i32),
}

/// A thread's signal state.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ThreadSignals {
    mask: u64,
    pending: Vec<SigInfo>,
    altstack: AltStack,
    /// The mask `rt_sigsuspend` replaced, for the handler's frame to restore.
    saved_mask: Option<u64>,
}

impl ThreadSignals {
    /// Where in the queue the lowest-numbered pending signal of `allowed` is.
    fn lowest(&self, allowed: u64) -> Option<usize> {
        self.pending
            .iter()
            .enumerate()
            .filter(|(_, info)| allowed & bit(info.signo) != 0)
            .min_by_key(|(_, info)| info.signo)
            .map(|(index, _)| index)
    }

    /// Takes the lowest-numbered pending signal of `allowed`.
    fn take_lowest(&mut self, allowed: u64) -> Option<SigInfo> {
        let index = self.lowest(allowed)?;
        Some(self.pending.remove(index))
    }

    /// After `execve`: the same mask and pending signals, no alternate stack (the memory it
    /// was in is gone).
    pub(super) fn for_exec(&self) -> ThreadSignals {
        ThreadSignals {
            mask: self.mask,
            pending: self.pending.clone(),
            ..ThreadSignals::default()
        }
    }

    /// A child process's thread's: the same mask and alternate stack, nothing pending.
    pub(super) fn for_child(&self) -> ThreadSignals {
        ThreadSignals {
            mask: self.mask,
            altstack: self.altstack,
            ..ThreadSignals::default()
        }
    }

    /// A new thread's: the creator's mask, nothing pending, no alternate stack.
    pub(super) fn for_new_thread(&self) -> ThreadSignals {
        ThreadSignals {
            mask: self.mask,
            ..ThreadSignals::default()
        }
    }

    /// Checks a thread's signal state read back from a snapshot file against what the
    /// kernel's calls keep: masks that block neither SIGKILL nor SIGSTOP, no more than
    /// `MAX_PENDING` signals pending, each numbered 1 to 64 and a standard one (below 32)
    /// at most once, and an alternate stack `sigaltstack` could have set. Says what does
    /// not hold.
    fn check(&self) -> Result<(), String> {
        for (name, mask) in [("mask", Some(self.mask)), ("saved mask", self.saved_mask)] {
            if mask.is_some_and(|mask| mask & UNBLOCKABLE != 0) {
                return Err(format!("its {name} blocks SIGKILL or SIGSTOP"));
            }
        }
        if self.pending.len() > MAX_PENDING {
            return Err(format!(
                "it has {} signals pending, more than {MAX_PENDING}",
                self.pending.len()
            ));
        }
        for (index, info) in self.pending.iter().enumerate() {
            if !(1..=64).contains(&info.signo) {
                return Err(format!("a pending signal is numbered {}", info.signo));
            }
            let earlier = self.pending.get(..index).unwrap_or_default();
            if info.signo < 32 && earlier.iter().any(|other| other.signo == info.signo) {
                return Err(format!("standard signal {} is pending twice", info.signo));
            }
        }
        self.altstack.check()
    }
}

/// The process's signal actions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Actions {
    #[serde(with = "crate::file_forms::array")]
    actions: [SigAction; SIGNAL_COUNT],
}

impl Default for Actions {
    fn default() -> Actions {
        Actions {
            actions: [SigAction::default(); SIGNAL_COUNT],
        }
    }
}

impl Actions {
    /// Whether `signal`'s action is `SIG_IGN`.
    pub(super) fn ignores(&self, signal: i32) -> bool {
        let action = self.get(signal);
        action.handler == SIG_IGN
    }

    /// After `execve`: signals with a handler go back to their default action (the handler
    /// is gone with the program); ignored ones stay ignored, as on Linux.
    pub(super) fn reset_for_exec(&mut self) {
        for action in &mut self.actions {
            if action.catches() {
                *action = SigAction::default();
            }
        }
    }

    /// Checks actions read back from a snapshot file against what `rt_sigaction` lets a
    /// program set: SIGKILL's and SIGSTOP's stay the default, and no handler's mask blocks
    /// either. Says what does not hold.
    fn check(&self) -> Result<(), String> {
        for signal in [SIGKILL, SIGSTOP] {
            if self.get(signal) != SigAction::default() {
                return Err(format!("signal {signal}'s action is not the default"));
            }
        }
        match (1..)
            .zip(&self.actions)
            .find(|(_, a)| a.mask & UNBLOCKABLE != 0)
        {
            Some((signal, _)) => Err(format!(
                "signal {signal}'s handler blocks SIGKILL or SIGSTOP"
            )),
            None => Ok(()),
        }
    }

    fn get(&self, signal: i32) -> SigAction {
        usize::try_from(signal.saturating_sub(1))
            .ok()
            .and_then(|index| self.actions.get(index))
            .copied()
            .unwrap_or_default()
    }

    fn set(&mut self, signal: i32, action: SigAction) {
        if let Some(slot) = usize::try_from(signal.saturating_sub(1))
            .ok()
            .and_then(|index| self.actions.get_mut(index))
        {
            *slot = action;
        }
    }
}

/// Signals whose default action is to do nothing (no job control here: the stop signals
/// count among them).
fn ignored_by_default(signal: i32) -> bool {
    matches!(signal, 17 | 18 | 19 | 20 | 21 | 22 | 23 | 28)
}

/// A valid signal number (1 to 64), or `EINVAL`.
fn signal_number(arg: u64) -> Result<i32, Errno> {
    let signal = abi::int(arg);
    if (1..=64).contains(&signal) {
        Ok(signal)
    } else {
        Err(Errno(libc::EINVAL))
    }
}

fn read_set(memory: &GuestMemory, addr: u64) -> Result<u64, Errno> {
    Ok(memory.read_obj::<u64>(addr)?)
}

impl Kernel {
    /// Checks the signal state read back from a snapshot file: the process's actions
    /// (`Actions::check`) and each thread's mask, pending signals and alternate stack
    /// (`ThreadSignals::check`). Says what is wrong.
    pub(super) fn check_signals(&self) -> Result<(), String> {
        self.actions.check()?;
        for tid in self.threads.ids() {
            if let Some(signals) = self.thread_signals(tid) {
                signals
                    .check()
                    .map_err(|why| format!("thread {tid}: {why}"))?;
            }
        }
        Ok(())
    }

    fn thread_signals(&self, tid: u32) -> Option<&ThreadSignals> {
        self.threads.get(tid).map(|thread| &thread.signals)
    }

    fn thread_signals_mut(&mut self, tid: u32) -> Option<&mut ThreadSignals> {
        self.threads.get_mut(tid).map(|thread| &mut thread.signals)
    }

    /// Whether thread `tid` has a signal its mask lets through.
    pub fn signal_pending(&self, tid: u32) -> bool {
        self.next_signal(tid).is_some()
    }

    /// Takes the next signal thread `tid` must act on: its handler to run (the thread's mask
    /// then grows by the handler's), or the program's end. Ignored ones are dropped.
    pub fn take_signal(&mut self, tid: u32) -> Option<Disposition> {
        loop {
            let signals = self.thread_signals_mut(tid)?;
            let info = signals.take_lowest(!signals.mask)?;
            let action = self.actions.get(info.signo);
            if action.catches() {
                return Some(Disposition::Deliver(self.enter_handler(tid, info, action)));
            }
            if action.handler == SIG_DFL && !ignored_by_default(info.signo) {
                return Some(Disposition::Terminate(info.signo));
            }
        }
    }

    /// What becomes of a fault thread `tid` raised: its handler, if it has one and does not
    /// block the signal; otherwise the program ends with it, as Linux forces it.
    pub fn fault(&mut self, tid: u32, info: SigInfo) -> Disposition {
        let action = self.actions.get(info.signo);
        let blocked = self
            .thread_signals(tid)
            .is_some_and(|signals| signals.mask & bit(info.signo) != 0);
        if action.catches() && !blocked {
            Disposition::Deliver(self.enter_handler(tid, info, action))
        } else {
            Disposition::Terminate(info.signo)
        }
    }

    /// The thread enters a handler: its mask grows, a one-shot action resets.
    fn enter_handler(&mut self, tid: u32, info: SigInfo, action: SigAction) -> Delivery {
        if action.flags & SA_RESETHAND != 0 {
            self.actions.set(info.signo, SigAction::default());
        }
        let Some(signals) = self.thread_signals_mut(tid) else {
            return Delivery {
                info,
                action,
                old_mask: 0,
                altstack: AltStack::default(),
            };
        };
        let old_mask = signals.saved_mask.take().unwrap_or(signals.mask);
        let mut mask = signals.mask | action.mask;
        if action.flags & SA_NODEFER == 0 {
            mask |= bit(info.signo);
        }
        signals.mask = mask & !UNBLOCKABLE;
        Delivery {
            info,
            action,
            old_mask,
            altstack: signals.altstack,
        }
    }

    /// After a handler switched to it: an `SS_AUTODISARM` alternate stack is disabled until
    /// `rt_sigreturn` restores it.
    pub fn disarm_altstack(&mut self, tid: u32) {
        if let Some(signals) = self.thread_signals_mut(tid)
            && signals.altstack.flags & SS_AUTODISARM != 0
        {
            signals.altstack = AltStack::default();
        }
    }

    /// `rt_sigreturn`'s restore of thread `tid`: its mask and alternate stack as the frame
    /// holds them, the stack taken as `sigaltstack` takes one (an invalid stack is left
    /// as it is, as Linux does).
    pub fn return_from_handler(&mut self, tid: u32, mask: u64, altstack: AltStack) {
        if let Some(signals) = self.thread_signals_mut(tid) {
            signals.mask = mask & !UNBLOCKABLE;
            if let Ok(stack) = AltStack::requested(altstack) {
                signals.altstack = stack;
            }
        }
    }

    /// Whether `SA_RESTART` on `signal` restarts syscall `number` after the handler.
    pub fn restarts(&self, signal: i32, number: u64) -> bool {
        self.actions.get(signal).flags & SA_RESTART != 0 && RESTARTABLE.contains(&number)
    }

    /// The signal the next [`Kernel::take_signal`] of thread `tid` would give, without taking
    /// it.
    pub fn next_signal(&self, tid: u32) -> Option<i32> {
        let signals = self.thread_signals(tid)?;
        let index = signals.lowest(!signals.mask)?;
        signals.pending.get(index).map(|info| info.signo)
    }

    /// Sends `info` to thread `tid`: queued if it has a handler or is blocked, the program's
    /// end if its default action ends it, nothing if ignored.
    fn send(&mut self, tid: u32, info: SigInfo) -> SysResult {
        let action = self.actions.get(info.signo);
        let Some(signals) = self.thread_signals_mut(tid) else {
            return Err(Errno(libc::ESRCH));
        };
        let blocked = signals.mask & bit(info.signo) != 0;
        if action.handler == SIG_IGN
            || (action.handler == SIG_DFL && ignored_by_default(info.signo))
        {
            return Ok(0);
        }
        if action.handler == SIG_DFL && (!blocked || info.signo == SIGKILL) {
            return self.end(ProcessEnd::Signaled(info.signo));
        }
        // A standard signal is pending at most once; real-time ones queue, within a bound.
        if info.signo < 32 && signals.pending.iter().any(|p| p.signo == info.signo) {
            return Ok(0);
        }
        if signals.pending.len() >= MAX_PENDING {
            return Err(Errno(libc::EAGAIN));
        }
        signals.pending.push(info);
        Ok(0)
    }

    /// `kill(pid, signal)`: its own pid, 0 (its group) and -1 (all it may signal) all mean
    /// the running process (see [`Kernel::signal_process`]); an ended child not yet reaped
    /// takes it and ignores it; any other pid (a waiting parent included) is `ESRCH`.
    pub(super) fn kill(&mut self, pid: u64, signal: u64) -> SysResult {
        let pid = abi::int(pid);
        let me = i32::try_from(self.pid()).unwrap_or(i32::MAX);
        if !(pid == me || matches!(pid, -1 | 0)) {
            // An ended child not yet reaped takes the signal and ignores it, as a zombie.
            let zombie = u32::try_from(pid).is_ok_and(|pid| self.children.contains_key(&pid));
            return if zombie {
                Ok(0)
            } else {
                Err(Errno(libc::ESRCH))
            };
        }
        if abi::int(signal) == 0 {
            return Ok(0);
        }
        let info = SigInfo {
            signo: signal_number(signal)?,
            code: SI_USER,
            addr: u64::from(self.pid()),
        };
        self.signal_process(info)
    }

    /// Sends a process-directed signal: to the first thread (lowest id) that does not block
    /// it, as Linux gives the main thread the first chance; if all block it, it waits on the
    /// calling thread.
    pub(super) fn signal_process(&mut self, info: SigInfo) -> SysResult {
        let current = self.threads.current();
        let target = self
            .threads
            .ids()
            .into_iter()
            .find(|&tid| {
                self.thread_signals(tid)
                    .is_some_and(|signals| signals.mask & bit(info.signo) == 0)
            })
            .unwrap_or(current);
        self.send(target, info)
    }

    /// Sends `SIGPIPE` to the calling thread, as Linux does when a write finds the other side
    /// of a pipe or socket gone (see [`raises_sigpipe`]).
    pub(super) fn raise_sigpipe(&mut self) {
        let info = SigInfo {
            signo: libc::SIGPIPE,
            code: SI_USER,
            addr: u64::from(self.pid()),
        };
        // The caller exists and SIGPIPE is a valid signal: nothing to fail.
        let _ = self.send(self.threads.current(), info);
    }

    /// `tkill(tid, signal)`.
    pub(super) fn tkill(&mut self, tid: u64, signal: u64) -> SysResult {
        self.tgkill(u64::from(self.pid()), tid, signal)
    }

    /// `tgkill(tgid, tid, signal)`.
    pub(super) fn tgkill(&mut self, tgid: u64, tid: u64, signal: u64) -> SysResult {
        let target = u32::try_from(tid)
            .ok()
            .filter(|&tid| self.threads.contains(tid));
        let Some(target) = target.filter(|_| tgid == u64::from(self.pid())) else {
            return Err(Errno(libc::ESRCH));
        };
        if abi::int(signal) == 0 {
            return Ok(0);
        }
        let signal = signal_number(signal)?;
        let info = SigInfo {
            signo: signal,
            code: SI_TKILL,
            addr: u64::from(self.pid()),
        };
        self.send(target, info)
    }

    /// `rt_sigaction(signal, act, oldact, sigsetsize)`.
    pub(super) fn rt_sigaction(
        &mut self,
        memory: &GuestMemory,
        signal: u64,
        act: u64,
        oldact: u64,
        sigset_size: u64,
    ) -> SysResult {
        if sigset_size != 8 {
            return Err(Errno(libc::EINVAL));
        }
        let signal = signal_number(signal)?;
        let new = if act == 0 {
            None
        } else {
            if signal == SIGKILL || signal == SIGSTOP {
                return Err(Errno(libc::EINVAL));
            }
            let words: [u64; 4] = memory.read_obj(act)?;
            Some(SigAction {
                handler: words[0],
                flags: words[1],
                restorer: words[2],
                mask: words[3] & !UNBLOCKABLE,
            })
        };
        if oldact != 0 {
            let old = self.actions.get(signal);
            memory.write_obj(oldact, [old.handler, old.flags, old.restorer, old.mask])?;
        }
        if let Some(action) = new {
            self.actions.set(signal, action);
            if action.handler == SIG_IGN
                || (action.handler == SIG_DFL && ignored_by_default(signal))
            {
                // Pending ones are discarded, as Linux does.
                for tid in self.threads.ids() {
                    if let Some(signals) = self.thread_signals_mut(tid) {
                        signals.pending.retain(|info| info.signo != signal);
                    }
                }
            }
        }
        Ok(0)
    }

    /// `rt_sigprocmask(how, set, oldset, sigsetsize)`: SIGKILL and SIGSTOP stay unblocked.
    pub(super) fn rt_sigprocmask(
        &mut self,
        memory: &GuestMemory,
        how: u64,
        set: u64,
        oldset: u64,
        sigset_size: u64,
    ) -> SysResult {
        if sigset_size != 8 {
            return Err(Errno(libc::EINVAL));
        }
        let tid = self.threads.current();
        let old = self.thread_signals(tid).map_or(0, |signals| signals.mask);
        let new = if set == 0 {
            None
        } else {
            let given = read_set(memory, set)?;
            Some(match how {
                SIG_BLOCK => old | given,
                SIG_UNBLOCK => old & !given,
                SIG_SETMASK => given,
                _ => return Err(Errno(libc::EINVAL)),
            })
        };
        if oldset != 0 {
            memory.write_obj(oldset, old)?;
        }
        if let (Some(mask), Some(signals)) = (new, self.thread_signals_mut(tid)) {
            signals.mask = mask & !UNBLOCKABLE;
        }
        Ok(0)
    }

    /// `sigaltstack(ss, old_ss)`; `sp` is the caller's stack pointer (a stack in use cannot
    /// change: `EPERM`).
    pub(super) fn sigaltstack(
        &mut self,
        memory: &GuestMemory,
        new: u64,
        old: u64,
        sp: u64,
    ) -> SysResult {
        let tid = self.threads.current();
        let current = self
            .thread_signals(tid)
            .map_or_else(AltStack::default, |signals| signals.altstack);
        let replacement = if new == 0 {
            None
        } else {
            let bytes: [u8; 24] = memory.read_obj(new)?;
            let given = AltStack::from_bytes(&bytes);
            if current.contains(sp) {
                return Err(Errno(libc::EPERM));
            }
            Some(AltStack::requested(given)?)
        };
        if old != 0 {
            memory.write(old, &current.to_bytes(sp))?;
        }
        if let (Some(stack), Some(signals)) = (replacement, self.thread_signals_mut(tid)) {
            signals.altstack = stack;
        }
        Ok(0)
    }

    /// `rt_sigpending(set, sigsetsize)`.
    pub(super) fn rt_sigpending(
        &mut self,
        memory: &GuestMemory,
        set: u64,
        sigset_size: u64,
    ) -> SysResult {
        if sigset_size != 8 {
            return Err(Errno(libc::EINVAL));
        }
        let pending = self
            .thread_signals(self.threads.current())
            .map_or(0, |signals| {
                signals
                    .pending
                    .iter()
                    .fold(0, |set, info| set | bit(info.signo))
            });
        memory.write_obj(set, pending)?;
        Ok(0)
    }

    /// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: takes a pending signal of `set`
    /// (the caller blocks them), waiting up to `timeout` (`EAGAIN` then).
    pub(super) fn rt_sigtimedwait(
        &mut self,
        memory: &GuestMemory,
        set: u64,
        info: u64,
        timeout: u64,
        sigset_size: u64,
    ) -> SysResult {
        if sigset_size != 8 {
            return Err(Errno(libc::EINVAL));
        }
        let wanted = read_set(memory, set)? & !UNBLOCKABLE;
        let limit = if timeout == 0 {
            None
        } else {
            Some(super::time::read_timespec(memory, timeout)?)
        };
        let tid = self.threads.current();
        let found = self
            .thread_signals_mut(tid)
            .and_then(|signals| signals.take_lowest(wanted));
        if let Some(taken) = found {
            if info != 0 {
                memory.write(info, &taken.to_bytes())?;
            }
            return Ok(u64::from(taken.signo.unsigned_abs()));
        }
        self.wait(limit)?;
        Err(Errno(libc::EAGAIN))
    }

    /// `rt_sigsuspend(mask, sigsetsize)`: waits with `mask` until a signal's handler runs;
    /// the handler's frame holds the mask from before, which `rt_sigreturn` restores.
    pub(super) fn rt_sigsuspend(
        &mut self,
        memory: &GuestMemory,
        mask: u64,
        sigset_size: u64,
    ) -> SysResult {
        if sigset_size != 8 {
            return Err(Errno(libc::EINVAL));
        }
        let tid = self.threads.current();
        if self.blocked_since.is_none() {
            let given = read_set(memory, mask)?;
            if let Some(signals) = self.thread_signals_mut(tid) {
                signals.saved_mask.get_or_insert(signals.mask);
                signals.mask = given & !UNBLOCKABLE;
            }
        }
        // Only a signal ends it: the run loop interrupts the wait (EINTR) to deliver one.
        self.wait(None)?;
        Err(Errno(libc::EINTR))
    }

    /// `pause`: waits until a signal's handler runs.
    pub(super) fn pause(&mut self) -> SysResult {
        self.wait(None)?;
        Err(Errno(libc::EINTR))
    }

    /// `rt_sigreturn`: the run loop restores the frame.
    pub(super) fn rt_sigreturn(&mut self) -> SysResult {
        self.pending_step = Some(Step::SigReturn);
        Ok(0)
    }

    /// Forgets the current thread's waiting call: a signal interrupted it.
    pub fn interrupt_wait(&mut self) {
        self.forget_futex_wait(self.threads.current());
        self.blocked_since = None;
        self.wake_at = None;
    }
}

/// Whether an `EPIPE` from `call` comes with `SIGPIPE` for the caller, as on Linux: `write`,
/// `writev`, and `sendto`/`sendmsg` without `MSG_NOSIGNAL` (a pipe or socket whose reading
/// side is gone, or a socket shut down for writing).
pub(super) fn raises_sigpipe(call: &crate::vm::vcpu::SyscallArgs) -> bool {
    const MSG_NOSIGNAL: u64 = 0x4000;
    match call.number {
        1 | 20 => true,
        44 => call.args[3] & MSG_NOSIGNAL == 0,
        46 => call.args[2] & MSG_NOSIGNAL == 0,
        _ => false,
    }
}
