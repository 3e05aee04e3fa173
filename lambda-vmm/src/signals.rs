//! How a crash reads: CPU exceptions mapped to the signal Linux would deliver, and signal
//! names as Lambda prints them ("signal: segmentation fault").

use crate::vm::vcpu::ExceptionInfo;

/// A Linux signal number with its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    /// The signal Linux delivers to a process that raised CPU exception `vector`.
    pub fn for_exception(vector: u8) -> Signal {
        Signal(match vector {
            0 | 16 | 19 => libc::SIGFPE, // #DE, #MF, #XM
            1 | 3 => libc::SIGTRAP,      // #DB, #BP
            6 => libc::SIGILL,           // #UD
            17 | 18 => libc::SIGBUS,     // #AC, #MC
            _ => libc::SIGSEGV,          // #PF, #GP, #SS, #NP, #TS, #DF, ...
        })
    }

    /// The constant's name and the description Go's runtime (and so Lambda) prints.
    fn names(self) -> Option<(&'static str, &'static str)> {
        Some(match self.0 {
            libc::SIGHUP => ("SIGHUP", "hangup"),
            libc::SIGINT => ("SIGINT", "interrupt"),
            libc::SIGQUIT => ("SIGQUIT", "quit"),
            libc::SIGILL => ("SIGILL", "illegal instruction"),
            libc::SIGTRAP => ("SIGTRAP", "trace/breakpoint trap"),
            libc::SIGABRT => ("SIGABRT", "aborted"),
            libc::SIGBUS => ("SIGBUS", "bus error"),
            libc::SIGFPE => ("SIGFPE", "floating point exception"),
            libc::SIGKILL => ("SIGKILL", "killed"),
            libc::SIGUSR1 => ("SIGUSR1", "user defined signal 1"),
            libc::SIGSEGV => ("SIGSEGV", "segmentation fault"),
            libc::SIGUSR2 => ("SIGUSR2", "user defined signal 2"),
            libc::SIGPIPE => ("SIGPIPE", "broken pipe"),
            libc::SIGALRM => ("SIGALRM", "alarm clock"),
            libc::SIGTERM => ("SIGTERM", "terminated"),
            libc::SIGXCPU => ("SIGXCPU", "CPU time limit exceeded"),
            libc::SIGXFSZ => ("SIGXFSZ", "file size limit exceeded"),
            libc::SIGSYS => ("SIGSYS", "bad system call"),
            _ => return None,
        })
    }

    /// The constant's name, such as `SIGSEGV`.
    pub fn name(self) -> String {
        match self.names() {
            Some((name, _)) => name.to_string(),
            None => format!("signal {}", self.0),
        }
    }

    /// The description Go's runtime (and so Lambda) prints, such as `segmentation fault`.
    pub fn description(self) -> &'static str {
        self.names()
            .map_or("signal", |(_, description)| description)
    }

    /// `signal: segmentation fault (SIGSEGV)`, as Lambda words a runtime killed by it.
    pub fn exit_message(self) -> String {
        format!("signal: {} ({})", self.description(), self.name())
    }
}

/// A one-line account of a CPU exception: the signal, the address and the instruction.
pub fn describe_exception(info: &ExceptionInfo) -> String {
    let signal = Signal::for_exception(info.vector);
    let exception = match info.vector {
        0 => "divide error",
        6 => "invalid opcode",
        13 => "general protection fault",
        14 => "page fault",
        _ => "CPU exception",
    };
    let address = match info.fault_address {
        Some(address) => format!(" at address {address:#x}"),
        None => String::new(),
    };
    format!(
        "signal: {} ({}): {} (vector {}){} by the instruction at {:#x}",
        signal.description(),
        signal.name(),
        exception,
        info.vector,
        address,
        info.rip
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_map_to_linux_signals() {
        assert_eq!(Signal::for_exception(14), Signal(libc::SIGSEGV));
        assert_eq!(Signal::for_exception(6), Signal(libc::SIGILL));
        assert_eq!(Signal::for_exception(0), Signal(libc::SIGFPE));
        let text = describe_exception(&ExceptionInfo {
            vector: 14,
            error_code: Some(6),
            rip: 0x401000,
            fault_address: Some(0),
        });
        assert_eq!(
            text,
            "signal: segmentation fault (SIGSEGV): page fault (vector 14) at address 0x0 \
             by the instruction at 0x401000"
        );
    }
}
