//! The initial stack of a program, as Linux's `execve` leaves it: `argc`, `argv`, `envp` and
//! the auxiliary vector the C library reads at start-up.

use linux_loader::elf::Elf64_Phdr;

use super::error::LoadError;
use super::image::ProgramImage;
use crate::mm::GuestMemory;
use crate::mm::layout::{self, PAGE};

/// Auxiliary vector keys (from Linux's `auxvec.h`).
mod auxv {
    pub const AT_NULL: u64 = 0;
    pub const AT_PHDR: u64 = 3;
    pub const AT_PHENT: u64 = 4;
    pub const AT_PHNUM: u64 = 5;
    pub const AT_PAGESZ: u64 = 6;
    pub const AT_BASE: u64 = 7;
    pub const AT_FLAGS: u64 = 8;
    pub const AT_ENTRY: u64 = 9;
    pub const AT_UID: u64 = 11;
    pub const AT_EUID: u64 = 12;
    pub const AT_GID: u64 = 13;
    pub const AT_EGID: u64 = 14;
    pub const AT_PLATFORM: u64 = 15;
    pub const AT_HWCAP: u64 = 16;
    pub const AT_CLKTCK: u64 = 17;
    pub const AT_SECURE: u64 = 23;
    pub const AT_SYSINFO_EHDR: u64 = 33;
    pub const AT_RANDOM: u64 = 25;
    pub const AT_EXECFN: u64 = 31;
}

/// What the program finds on its stack at entry.
pub struct StartupInfo<'a> {
    /// `argv`, starting with the program name.
    pub argv: Vec<&'a [u8]>,
    /// `envp` as `KEY=VALUE` strings.
    pub envp: Vec<&'a [u8]>,
    /// 16 random bytes for `AT_RANDOM` (stack protector and pointer guard seeds).
    pub random: [u8; 16],
    /// `AT_HWCAP`: CPUID leaf 1 EDX.
    pub hwcap: u64,
    /// Whether to name the vDSO (`AT_SYSINFO_EHDR`).
    pub vdso: bool,
}

/// Builds the initial stack at the top of the stack region and returns the stack pointer
/// (pointing at `argc`, 16-byte aligned, as the x86-64 ABI requires at `_start`).
pub fn build_stack(
    image: &ProgramImage,
    memory: &GuestMemory,
    startup: &StartupInfo<'_>,
) -> Result<u64, LoadError> {
    let mut top = layout::STACK_TOP;
    let overflow = || LoadError::Malformed("arguments and environment do not fit the stack".into());
    // Arguments, environment and auxiliary vector may take a quarter of the stack.
    let floor = layout::STACK_TOP.saturating_sub(layout::STACK_SIZE / 4);

    let mut push_bytes = |data: &[u8]| -> Result<u64, LoadError> {
        let len = u64::try_from(data.len()).map_err(|_| overflow())?;
        top = top.checked_sub(len).ok_or_else(overflow)?;
        if top < floor {
            return Err(overflow());
        }
        memory.write(top, data).map_err(|_| overflow())?;
        Ok(top)
    };
    let mut push_string = |s: &[u8]| -> Result<u64, LoadError> {
        let mut bytes = Vec::with_capacity(s.len().saturating_add(1));
        bytes.extend_from_slice(s);
        bytes.push(0);
        push_bytes(&bytes)
    };
    let argv: Vec<u64> = startup
        .argv
        .iter()
        .map(|a| push_string(a))
        .collect::<Result<_, _>>()?;
    let envp: Vec<u64> = startup
        .envp
        .iter()
        .map(|e| push_string(e))
        .collect::<Result<_, _>>()?;
    let platform = push_string(b"x86_64")?;
    let random = push_bytes(&startup.random)?;
    let execfn = argv.first().copied().unwrap_or(0);

    let auxv = [
        (auxv::AT_PHDR, image.phdr_vaddr),
        (auxv::AT_PHENT, size_of::<Elf64_Phdr>() as u64),
        (auxv::AT_PHNUM, u64::from(image.phnum)),
        (auxv::AT_PAGESZ, PAGE),
        (auxv::AT_BASE, image.interpreter_base()),
        (auxv::AT_FLAGS, 0),
        (auxv::AT_ENTRY, image.entry()),
        (auxv::AT_UID, 0),
        (auxv::AT_EUID, 0),
        (auxv::AT_GID, 0),
        (auxv::AT_EGID, 0),
        (auxv::AT_SECURE, 0),
        (auxv::AT_RANDOM, random),
        (auxv::AT_HWCAP, startup.hwcap),
        (auxv::AT_CLKTCK, 100),
        (auxv::AT_PLATFORM, platform),
        (auxv::AT_EXECFN, execfn),
    ];
    let vdso = [(auxv::AT_SYSINFO_EHDR, layout::VDSO)];
    let vdso = if startup.vdso { &vdso[..] } else { &[] };
    let auxv = auxv.iter().chain(vdso).chain(&[(auxv::AT_NULL, 0)]);
    let mut words: Vec<u64> = Vec::new();
    words.push(u64::try_from(argv.len()).map_err(|_| overflow())?);
    words.extend(&argv);
    words.push(0);
    words.extend(&envp);
    words.push(0);
    for &(key, value) in auxv {
        words.push(key);
        words.push(value);
    }
    let size = u64::try_from(words.len())
        .ok()
        .and_then(|words| words.checked_mul(8))
        .ok_or_else(overflow)?;
    let stack_pointer = top.checked_sub(size).ok_or_else(overflow)? & !15;
    if stack_pointer < floor {
        return Err(overflow());
    }
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    memory
        .write(stack_pointer, &bytes)
        .map_err(|_| overflow())?;
    Ok(stack_pointer)
}
