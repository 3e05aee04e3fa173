//! CPU exceptions the guest program raises at CPL3, and how they read: the signal Linux would
//! deliver for each, and a one-line account of the fault.

use lambda_core::{Signal, Stop};

/// A CPU exception raised by the guest program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionInfo {
    /// The exception vector (0 = #DE, 6 = #UD, 13 = #GP, 14 = #PF, ...).
    pub vector: u8,
    /// The error code the CPU pushed, for the vectors that have one.
    pub error_code: Option<u64>,
    /// The faulting instruction.
    pub rip: u64,
    /// For a page fault, the address that faulted.
    pub fault_address: Option<u64>,
}

/// Vectors for which the CPU pushes an error code.
pub(super) fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

impl ExceptionInfo {
    /// The signal Linux delivers to a process that raised this exception.
    pub fn signal(&self) -> Signal {
        match self.vector {
            0 | 16 | 19 => Signal::SIGFPE, // #DE, #MF, #XM
            1 | 3 => Signal::SIGTRAP,      // #DB, #BP
            6 => Signal::SIGILL,           // #UD
            17 | 18 => Signal::SIGBUS,     // #AC, #MC
            _ => Signal::SIGSEGV,          // #PF, #GP, #SS, #NP, #TS, #DF, ...
        }
    }

    /// What happened, where: `page fault (vector 14) at address 0x0 by the instruction at
    /// 0x401000`.
    pub fn detail(&self) -> String {
        let exception = match self.vector {
            0 => "divide error",
            6 => "invalid opcode",
            13 => "general protection fault",
            14 => "page fault",
            _ => "CPU exception",
        };
        let address = match self.fault_address {
            Some(address) => format!(" at address {address:#x}"),
            None => String::new(),
        };
        format!(
            "{exception} (vector {}){address} by the instruction at {:#x}",
            self.vector, self.rip
        )
    }

    /// How the program ends for a page fault that could not be resolved: `SIGSEGV`, with
    /// the address, the access and why (`page fault at address 0x7f0000001000 (a write) by
    /// the instruction at 0x401000: the mapping does not allow writing`).
    pub fn segfault(&self, fault: crate::mm::PageFault, why: &str) -> Stop {
        Stop::Signaled {
            signal: Signal::SIGSEGV,
            detail: Some(format!(
                "page fault at address {:#x} ({}) by the instruction at {:#x}: {why}",
                fault.addr,
                fault.access(),
                self.rip
            )),
        }
    }

    /// How the program ends: killed by the exception's signal.
    pub fn stop(&self) -> Stop {
        Stop::Signaled {
            signal: self.signal(),
            detail: Some(self.detail()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(vector: u8) -> ExceptionInfo {
        ExceptionInfo {
            vector,
            error_code: Some(6),
            rip: 0x401000,
            fault_address: (vector == 14).then_some(0),
        }
    }

    #[test]
    fn exceptions_map_to_linux_signals() {
        assert_eq!(info(14).signal(), Signal::SIGSEGV);
        assert_eq!(info(6).signal(), Signal::SIGILL);
        assert_eq!(info(0).signal(), Signal::SIGFPE);
        assert_eq!(
            info(14).detail(),
            "page fault (vector 14) at address 0x0 by the instruction at 0x401000"
        );
        let (error, _) = info(14).stop().error(
            &lambda_core::FunctionConfig::new(
                "f",
                lambda_core::CodeLocation::Executable("/f".into()),
            ),
            false,
        );
        assert_eq!(
            error.message,
            "Runtime exited with error: signal: segmentation fault (SIGSEGV): page fault \
             (vector 14) at address 0x0 by the instruction at 0x401000"
        );
    }
}
