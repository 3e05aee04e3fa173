//! Linux signals as Lambda names them when a runtime dies of one: `signal: segmentation fault
//! (SIGSEGV)`. The numbers are x86-64 Linux's, the only ABI functions are built for.

use std::fmt;

/// A Linux signal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(pub i32);

impl Signal {
    /// `SIGILL`, raised by an invalid instruction.
    pub const SIGILL: Signal = Signal(4);
    /// `SIGTRAP`, raised by a breakpoint.
    pub const SIGTRAP: Signal = Signal(5);
    /// `SIGABRT`, what `abort` raises.
    pub const SIGABRT: Signal = Signal(6);
    /// `SIGBUS`, raised by an alignment or machine-check fault.
    pub const SIGBUS: Signal = Signal(7);
    /// `SIGFPE`, raised by a divide error or a floating-point exception.
    pub const SIGFPE: Signal = Signal(8);
    /// `SIGKILL`, which cannot be caught.
    pub const SIGKILL: Signal = Signal(9);
    /// `SIGSEGV`, raised by a bad memory access.
    pub const SIGSEGV: Signal = Signal(11);

    /// The constant's name and the description Go's runtime (and so Lambda) prints.
    fn names(self) -> Option<(&'static str, &'static str)> {
        Some(match self.0 {
            1 => ("SIGHUP", "hangup"),
            2 => ("SIGINT", "interrupt"),
            3 => ("SIGQUIT", "quit"),
            4 => ("SIGILL", "illegal instruction"),
            5 => ("SIGTRAP", "trace/breakpoint trap"),
            6 => ("SIGABRT", "aborted"),
            7 => ("SIGBUS", "bus error"),
            8 => ("SIGFPE", "floating point exception"),
            9 => ("SIGKILL", "killed"),
            10 => ("SIGUSR1", "user defined signal 1"),
            11 => ("SIGSEGV", "segmentation fault"),
            12 => ("SIGUSR2", "user defined signal 2"),
            13 => ("SIGPIPE", "broken pipe"),
            14 => ("SIGALRM", "alarm clock"),
            15 => ("SIGTERM", "terminated"),
            24 => ("SIGXCPU", "CPU time limit exceeded"),
            25 => ("SIGXFSZ", "file size limit exceeded"),
            31 => ("SIGSYS", "bad system call"),
            _ => return None,
        })
    }

    /// The constant's name, such as `SIGSEGV`, or `signal 60` for one without a name here.
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
}

/// `signal: segmentation fault (SIGSEGV)`, as Lambda words a runtime killed by it.
impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signal: {} ({})", self.description(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_read_like_lambda() {
        assert_eq!(
            Signal::SIGSEGV.to_string(),
            "signal: segmentation fault (SIGSEGV)"
        );
        assert_eq!(Signal::SIGKILL.to_string(), "signal: killed (SIGKILL)");
        assert_eq!(Signal(60).to_string(), "signal: signal (signal 60)");
    }
}
