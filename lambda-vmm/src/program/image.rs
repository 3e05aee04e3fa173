//! A checked program image: the ELF file's headers checked once, its segments staged in a
//! memory file laid out as they sit in memory, mapped copy-on-write into each VM.

use std::os::fd::AsFd;
use std::sync::Arc;

use linux_loader::elf::{Elf64_Ehdr, Elf64_Phdr};
use vm_memory::ByteValued;

use super::error::LoadError;
use super::package::CodePackage;
use super::resolve::{ResolveError, resolve};
use super::syscall_sites::{SyscallSites, rewrite_syscall};
use crate::code_scan::{self, Code};
use crate::kernel::PROGRAM_PATH;
use crate::mm::GuestMemory;
use crate::mm::layout::{self, CHUNK, PAGE};

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;

/// One loadable segment: file bytes at a virtual address, then zeros to `memory_size`.
#[derive(Debug, Clone)]
struct Segment {
    executable: bool,
    /// `PROT_*` bits from the segment's flags.
    prot: u32,
    vaddr: u64,
    file_offset: usize,
    file_size: usize,
    memory_size: u64,
}

/// What an ELF file is loaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The function's program: static, static-pie, or dynamic (naming an interpreter).
    Program,
    /// A dynamic program's interpreter (`ld.so`): position-independent, needing none itself,
    /// placed at `layout::INTERP_BASE`.
    Interpreter,
}

/// Longest interpreter path accepted (Linux's `PATH_MAX`, as `binfmt_elf` checks it).
const MAX_INTERP_PATH: u64 = 4096;

/// A checked x86-64 program, ready to be loaded into any number of VMs; a dynamically linked
/// one also carries its interpreter, once [`ProgramImage::with_interpreter`] added it.
#[derive(Debug, Clone)]
pub struct ProgramImage {
    template: Arc<ImageTemplate>,
    /// Page ranges of the segments, with their `PROT_*` bits.
    protections: Arc<[(u64, u64, u32)]>,
    syscall_sites: Arc<SyscallSites>,
    entry: u64,
    /// Where the program headers are in memory (`AT_PHDR`), and how many (`AT_PHNUM`).
    pub(super) phdr_vaddr: u64,
    pub(super) phnum: u16,
    /// One past the highest loaded byte (page-aligned): where brk starts.
    image_end: u64,
    /// The interpreter the program's `PT_INTERP` names, if it is dynamically linked.
    interpreter_path: Option<String>,
    /// That interpreter, loaded from the function's base image.
    interpreter: Option<Arc<ProgramImage>>,
    /// The argument vector the program starts with: the program's path, or for a `#!`
    /// script, its interpreters' paths and arguments before it.
    argv: Arc<[Vec<u8>]>,
    /// The executable file that runs (the program, or a script's interpreter).
    exe: Arc<str>,
    /// Whether a program's `execve` started it (rather than the function's start).
    by_exec: bool,
}

/// The `T` at `offset` in `bytes`, if it is all there. `T` is one of the ELF header structs,
/// plain integers for which any bytes are a valid value (`ByteValued`).
fn read_struct<T: ByteValued + Default>(bytes: &[u8], offset: usize) -> Option<T> {
    let end = offset.checked_add(size_of::<T>())?;
    let mut value = T::default();
    value
        .as_mut_slice()
        .copy_from_slice(bytes.get(offset..end)?);
    Some(value)
}

impl ProgramImage {
    /// What tells staged images apart: the same for clones of one image (the program cache
    /// hands out clones while the file is unchanged), different for another image.
    pub fn identity(&self) -> usize {
        Arc::as_ptr(&self.template) as usize
    }

    /// Checks the program of a code package: for a `#!` script, the interpreter it names
    /// (from the package or the base image, through up to `MAX_SCRIPT_DEPTH` scripts); for a
    /// dynamically linked program, with its own interpreter from the base image.
    pub fn from_package(package: &CodePackage) -> Result<ProgramImage, LoadError> {
        let argv = vec![PROGRAM_PATH.as_bytes().to_vec()];
        resolve(package, PROGRAM_PATH, package.program.clone(), argv, None).map_err(|error| {
            match error {
                ResolveError::Program(error) => error,
                ResolveError::Script { path, reason, .. } => LoadError::Script { path, reason },
                ResolveError::Interpreter {
                    interpreter,
                    reason,
                    ..
                } => match &package.base_image {
                    None => LoadError::Dynamic(interpreter),
                    Some(image) => LoadError::Interpreter {
                        interpreter,
                        image: image.path().display().to_string(),
                        reason,
                    },
                },
            }
        })
    }

    /// This program as started from the file `exe` with the argument vector `argv`.
    pub(super) fn started_as(self, exe: String, argv: Vec<Vec<u8>>) -> ProgramImage {
        ProgramImage {
            exe: exe.into(),
            argv: argv.into(),
            ..self
        }
    }

    /// This program, started by a program's `execve`.
    pub fn started_by_execve(self) -> ProgramImage {
        ProgramImage {
            by_exec: true,
            ..self
        }
    }

    /// Whether a program's `execve` started it.
    pub fn started_by_exec(&self) -> bool {
        self.by_exec
    }

    /// Checks a program held in memory.
    pub fn parse(bytes: &[u8]) -> Result<ProgramImage, LoadError> {
        ProgramImage::parse_as(bytes, Role::Program)
    }

    /// Checks a dynamic linker held in memory, for [`ProgramImage::with_interpreter`].
    pub fn parse_interpreter(bytes: &[u8]) -> Result<ProgramImage, LoadError> {
        ProgramImage::parse_as(bytes, Role::Interpreter)
    }

    /// The interpreter the program names (`PT_INTERP`), if it is dynamically linked.
    pub fn interpreter_path(&self) -> Option<&str> {
        self.interpreter_path.as_deref()
    }

    /// This program with `interpreter` loaded next to it, started first, and told where the
    /// program is (`AT_BASE`, `AT_ENTRY`, `AT_PHDR`), as Linux's `binfmt_elf` does.
    pub fn with_interpreter(mut self, interpreter: ProgramImage) -> ProgramImage {
        self.interpreter = Some(Arc::new(interpreter));
        self
    }

    /// Where the CPU starts: the interpreter's entry for a dynamic program, else the
    /// program's.
    pub fn start_address(&self) -> u64 {
        self.interpreter
            .as_ref()
            .map_or(self.entry, |interp| interp.entry)
    }

    /// Where the interpreter is loaded (`AT_BASE`), or 0 without one.
    pub fn interpreter_base(&self) -> u64 {
        self.interpreter
            .as_ref()
            .map_or(0, |interp| interp.template.start)
    }

    fn parse_as(bytes: &[u8], role: Role) -> Result<ProgramImage, LoadError> {
        if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
            return Err(LoadError::NotElf);
        }
        let header: Elf64_Ehdr = read_struct(bytes, 0)
            .ok_or_else(|| LoadError::Malformed("file ends inside the ELF header".into()))?;
        if header.e_ident[4] != ELFCLASS64 {
            return Err(LoadError::WrongArchitecture("32-bit ELF".into()));
        }
        if header.e_ident[5] != ELFDATA2LSB {
            return Err(LoadError::WrongArchitecture("big-endian ELF".into()));
        }
        if header.e_machine != EM_X86_64 {
            return Err(LoadError::WrongArchitecture(format!(
                "ELF machine {}",
                header.e_machine
            )));
        }
        if header.e_type != ET_EXEC && header.e_type != ET_DYN {
            return Err(LoadError::NotExecutable(header.e_type));
        }
        let section_table_end = header.e_shoff.saturating_add(
            u64::from(header.e_shnum).saturating_mul(u64::from(header.e_shentsize)),
        );
        if header.e_shoff != 0 && section_table_end > bytes.len() as u64 {
            return Err(LoadError::Malformed(
                "the section header table lies past the end of the file (truncated?)".into(),
            ));
        }
        if usize::from(header.e_phentsize) != size_of::<Elf64_Phdr>() || header.e_phnum == 0 {
            return Err(LoadError::Malformed("no usable program headers".into()));
        }
        let mut program_headers = Vec::with_capacity(usize::from(header.e_phnum));
        for index in 0..usize::from(header.e_phnum) {
            let offset = usize::try_from(header.e_phoff)
                .ok()
                .and_then(|phoff| phoff.checked_add(index.checked_mul(size_of::<Elf64_Phdr>())?))
                .ok_or_else(|| LoadError::Malformed("program header offset overflows".into()))?;
            let phdr: Elf64_Phdr = read_struct(bytes, offset).ok_or_else(|| {
                LoadError::Malformed("file ends inside the program headers".into())
            })?;
            program_headers.push(phdr);
        }
        let mut interpreter_path = None;
        if let Some(interp) = program_headers.iter().find(|p| p.p_type == PT_INTERP) {
            if role == Role::Interpreter {
                return Err(LoadError::Malformed(
                    "the interpreter names an interpreter of its own".into(),
                ));
            }
            interpreter_path = Some(interpreter_name(bytes, interp)?);
        }
        let is_pie = header.e_type == ET_DYN;
        if is_pie && !program_headers.iter().any(|p| p.p_type == PT_DYNAMIC) {
            return Err(LoadError::Malformed(
                "position-independent program without a dynamic section".into(),
            ));
        }
        let load_bias = match (role, is_pie) {
            (Role::Interpreter, false) => {
                return Err(LoadError::Malformed(
                    "the interpreter is not position-independent (ET_DYN)".into(),
                ));
            }
            (Role::Interpreter, true) => layout::INTERP_BASE,
            (Role::Program, true) => layout::PIE_LOAD_BASE,
            (Role::Program, false) => 0,
        };
        let mut segments = Vec::new();
        let mut image_end = 0u64;
        let mut phdr_vaddr = None;
        for phdr in program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
            if phdr.p_filesz > phdr.p_memsz {
                return Err(LoadError::Malformed(
                    "segment file size exceeds memory size".into(),
                ));
            }
            let file_end = phdr.p_offset.checked_add(phdr.p_filesz);
            if file_end.is_none_or(|end| end > bytes.len() as u64) {
                return Err(LoadError::Malformed(
                    "a segment extends past the end of the file (truncated?)".into(),
                ));
            }
            let vaddr = phdr
                .p_vaddr
                .checked_add(load_bias)
                .filter(|v| *v >= layout::MIN_MAP_ADDRESS)
                .ok_or_else(|| {
                    LoadError::Malformed(format!(
                        "segment at {:#x} is below {:#x}",
                        phdr.p_vaddr,
                        layout::MIN_MAP_ADDRESS
                    ))
                })?;
            let end = vaddr
                .checked_add(phdr.p_memsz)
                .filter(|end| *end <= layout::MMAP_TOP)
                .ok_or_else(|| LoadError::Malformed("segment address overflows".into()))?;
            // Within the file (checked above), so within host sizes.
            let (Ok(file_offset), Ok(file_size)) = (
                usize::try_from(phdr.p_offset),
                usize::try_from(phdr.p_filesz),
            ) else {
                return Err(LoadError::Malformed("segment offset overflows".into()));
            };
            if let Some(into_segment) = header.e_phoff.checked_sub(phdr.p_offset)
                && into_segment < phdr.p_filesz
            {
                phdr_vaddr = vaddr.checked_add(into_segment);
            }
            image_end = image_end.max(end);
            let mut prot = 0;
            for (flag, bit) in [(PF_R, 1), (PF_W, 2), (PF_X, 4)] {
                if phdr.p_flags & flag != 0 {
                    prot |= bit;
                }
            }
            segments.push(Segment {
                executable: phdr.p_flags & PF_X != 0,
                prot,
                vaddr,
                file_offset,
                file_size,
                memory_size: phdr.p_memsz,
            });
        }
        if segments.is_empty() {
            return Err(LoadError::Malformed("no loadable segments".into()));
        }
        // Staging copies every segment's file bytes into host memory. Segments that share
        // file bytes at different addresses would copy a file many times over (a few MB of
        // program headers naming the same bytes could make the host hold terabytes), and no
        // linker makes them: the segments together hold no more bytes than the file.
        let staged: u64 = segments.iter().map(|s| s.file_size as u64).sum();
        if staged > bytes.len() as u64 {
            return Err(LoadError::Malformed(format!(
                "the loadable segments hold {staged} bytes of a {}-byte file: they overlap",
                bytes.len()
            )));
        }
        let entry = header.e_entry.wrapping_add(load_bias);
        if !segments
            .iter()
            .any(|s| (s.vaddr..s.vaddr.saturating_add(s.memory_size)).contains(&entry))
        {
            return Err(LoadError::Malformed(format!(
                "entry point {entry:#x} is outside the program"
            )));
        }
        let image_end = image_end.next_multiple_of(PAGE);
        let template = ImageTemplate::build(bytes, &segments, image_end)
            .map_err(|e| LoadError::Malformed(format!("cannot stage the program image: {e}")))?;
        let executable: Vec<(u64, u64)> = segments
            .iter()
            .filter(|s| s.executable)
            .map(|s| (s.vaddr, s.memory_size))
            .collect();
        // The code as the file holds it: its executable sections, or else its executable
        // segments' file bytes.
        let code = code_scan::executable_sections(bytes, header.e_shoff, header.e_shnum, load_bias)
            .unwrap_or_else(|| {
                segments
                    .iter()
                    .filter(|s| s.executable)
                    .filter_map(|s| {
                        let end = s.file_offset.checked_add(s.file_size)?;
                        Some(Code {
                            address: s.vaddr,
                            bytes: bytes.get(s.file_offset..end)?,
                        })
                    })
                    .collect()
            });
        let verified = code_scan::syscall_instructions(&code);
        // Each page's protection: the union of the segments' on it (two segments may share
        // a page, as Linux then maps it with both).
        let mut protections: Vec<(u64, u64, u32)> = Vec::new();
        for segment in &segments {
            let start = segment.vaddr & !(PAGE - 1);
            let end = segment
                .vaddr
                .saturating_add(segment.memory_size)
                .next_multiple_of(PAGE);
            protections.push((start, end, segment.prot));
        }
        Ok(ProgramImage {
            protections: Arc::from(protections),
            template: Arc::new(template),
            syscall_sites: Arc::new(SyscallSites::new(executable, verified)),
            entry,
            phdr_vaddr: phdr_vaddr.unwrap_or(0),
            phnum: header.e_phnum,
            image_end,
            interpreter_path,
            interpreter: None,
            argv: Arc::from(vec![PROGRAM_PATH.as_bytes().to_vec()]),
            exe: Arc::from(PROGRAM_PATH),
            by_exec: false,
        })
    }

    /// The argument vector the program starts with (`argv[0]` first).
    pub fn argv(&self) -> &[Vec<u8>] {
        &self.argv
    }

    /// The executable file that runs, as `/proc/self/exe` names it: the program, or the
    /// interpreter of a `#!` script.
    pub fn exe_path(&self) -> &str {
        &self.exe
    }

    /// The entry point, after relocation.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// Where brk starts.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn image_end(&self) -> u64 {
        self.image_end
    }

    /// Checks the program fits in a function of `memory_bytes`: its 2 MiB stretches, with
    /// one more for the stack and one for everything else, must be whole chunks of it.
    pub fn check_fits(&self, memory_bytes: u64) -> Result<(), LoadError> {
        let stretches_of = |image: &ProgramImage| {
            let first = image.template.start & !(CHUNK - 1);
            image.image_end.saturating_sub(first).div_ceil(CHUNK)
        };
        let stretches =
            stretches_of(self).saturating_add(self.interpreter.as_deref().map_or(0, stretches_of));
        let needed = stretches.saturating_add(2).saturating_mul(CHUNK);
        if needed > memory_bytes {
            return Err(LoadError::TooLarge {
                needed: needed.div_ceil(1 << 20),
                memory_mb: memory_bytes >> 20,
            });
        }
        Ok(())
    }

    /// The protection of the image's page at `page`: what the segments on it allow.
    fn protection(&self, page: u64) -> u32 {
        self.protections
            .iter()
            .filter(|(start, end, _)| (*start..*end).contains(&page))
            .fold(0, |prot, (_, _, segment)| prot | segment)
    }

    /// Puts the program into guest memory: its staged pages are mapped copy-on-write, so
    /// nothing is copied, each page with its segment's protection.
    pub fn load_into(&self, memory: &GuestMemory) -> Result<(), LoadError> {
        self.check_fits(memory.size())?;
        // The interpreter first: the program's load then sets where the heap starts.
        if let Some(interpreter) = &self.interpreter {
            interpreter.load_into(memory)?;
        }
        let template = &self.template;
        memory
            .load_image(
                template.file.as_fd(),
                template.start,
                template.len,
                |page| self.protection(page),
            )
            .map_err(|e| match e {
                crate::mm::LoadImageError::TooLarge => LoadError::TooLarge {
                    needed: self.image_end.div_ceil(1 << 20),
                    memory_mb: memory.size() >> 20,
                },
                other => LoadError::Malformed(other.to_string()),
            })?;
        self.syscall_sites.apply(memory);
        Ok(())
    }

    /// Bytes of the program file copied into its staged image (host memory).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn staged_bytes(&self) -> u64 {
        self.template.staged
    }

    /// After a syscall came through the stub from `site`: rewrites it to enter the VMM
    /// directly if it is a `syscall` instruction of the program's or its interpreter's file
    /// (`SyscallSites::learn`, remembered for the program's next VMs), or of an image
    /// library this address space maps (rewritten in this VM only).
    pub fn learn_syscall_site(&self, memory: &GuestMemory, site: u64) {
        if memory.is_library_site(site) {
            rewrite_syscall(memory, site);
            return;
        }
        self.syscall_sites.learn(memory, site);
        if let Some(interpreter) = &self.interpreter {
            interpreter.syscall_sites.learn(memory, site);
        }
    }
}

/// The path a `PT_INTERP` header names: NUL-terminated, absolute, at most `PATH_MAX`.
fn interpreter_name(bytes: &[u8], interp: &Elf64_Phdr) -> Result<String, LoadError> {
    if interp.p_filesz > MAX_INTERP_PATH || interp.p_filesz < 2 {
        return Err(LoadError::Malformed(format!(
            "the interpreter's path is {} bytes long (2 to {MAX_INTERP_PATH} accepted)",
            interp.p_filesz
        )));
    }
    let name = usize::try_from(interp.p_offset)
        .ok()
        .zip(usize::try_from(interp.p_filesz).ok())
        .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?))
        .ok_or_else(|| {
            LoadError::Malformed("the interpreter's path lies past the end of the file".into())
        })?;
    let Some((b'\0', name)) = name.split_last() else {
        return Err(LoadError::Malformed(
            "the interpreter's path does not end in a NUL".into(),
        ));
    };
    match std::str::from_utf8(name) {
        Ok(name) if name.starts_with('/') && !name.contains('\0') => Ok(name.to_string()),
        _ => Err(LoadError::Malformed(format!(
            "the interpreter's path {:?} is not an absolute path",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// The program's pages laid out as they sit in memory (segments at their addresses, bss
/// zero), in an anonymous memory file built once per program. Every VM maps it privately.
#[derive(Debug)]
struct ImageTemplate {
    file: std::fs::File,
    /// Guest address of the file's first byte (page-aligned).
    start: u64,
    /// Length (page-aligned).
    len: u64,
    /// Bytes of the program file written into it (read by the fuzz targets' checks).
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    staged: u64,
}

impl ImageTemplate {
    fn build(bytes: &[u8], segments: &[Segment], image_end: u64) -> std::io::Result<ImageTemplate> {
        use std::os::unix::fs::FileExt;
        let malformed = || std::io::Error::from(std::io::ErrorKind::InvalidData);
        let start = segments.iter().map(|s| s.vaddr).min().unwrap_or(0) & !PAGE.saturating_sub(1);
        let len = image_end.checked_sub(start).ok_or_else(malformed)?;
        let file = crate::host::memory_file(c"lambda-program")?;
        file.set_len(len)?;
        let mut staged: u64 = 0;
        for segment in segments {
            let data = segment
                .file_offset
                .checked_add(segment.file_size)
                .and_then(|end| bytes.get(segment.file_offset..end))
                .ok_or_else(malformed)?;
            let at = segment.vaddr.checked_sub(start).ok_or_else(malformed)?;
            file.write_all_at(data, at)?;
            staged = u64::try_from(data.len())
                .ok()
                .and_then(|len| staged.checked_add(len))
                .ok_or_else(malformed)?;
        }
        Ok(ImageTemplate {
            file,
            start,
            len,
            staged,
        })
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf_and_truncated() {
        assert_eq!(
            ProgramImage::parse(b"#!/bin/sh\necho hi\n").unwrap_err(),
            LoadError::NotElf
        );
        assert!(matches!(
            ProgramImage::parse(b"\x7fELF\x02\x01").unwrap_err(),
            LoadError::Malformed(_)
        ));
        assert_eq!(ProgramImage::parse(&[]).unwrap_err(), LoadError::NotElf);
    }

    fn header(class: u8, machine: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = class;
        bytes[5] = ELFDATA2LSB;
        bytes[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes
    }

    /// A static program whose loadable segments are `(file offset, file size, address)`,
    /// each mapping `size` bytes of the file; the entry is the first segment's address.
    pub(in crate::program) fn program(segments: &[(u64, u64, u64)], file_len: usize) -> Vec<u8> {
        let mut bytes = header(ELFCLASS64, EM_X86_64);
        bytes[24..32].copy_from_slice(&segments[0].2.to_le_bytes()); // e_entry
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        bytes[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes()); // e_phnum
        for &(offset, size, vaddr) in segments {
            let phdr = Elf64_Phdr {
                p_type: PT_LOAD,
                p_flags: PF_X | 4,
                p_offset: offset,
                p_vaddr: vaddr,
                p_paddr: vaddr,
                p_filesz: size,
                p_memsz: size,
                p_align: PAGE,
            };
            bytes.extend_from_slice(phdr.as_slice());
        }
        bytes.resize(file_len, 0);
        bytes
    }

    #[test]
    fn scripts_start_their_interpreters_with_linux_argv() {
        let elf: Arc<[u8]> = program(&[(0, 200, 0x40_0000)], 200).into();
        let package = CodePackage {
            files: Arc::from(vec![
                (
                    "bootstrap".to_string(),
                    Arc::from(&b"#!/var/task/wrap -a b\n"[..]),
                ),
                (
                    "wrap".to_string(),
                    Arc::from(&b"#!/var/task/real\necho\n"[..]),
                ),
                ("real".to_string(), elf),
            ]),
            program: Arc::from(&b"#!/var/task/wrap -a b\n"[..]),
            base_image: None,
            layers: Arc::from(Vec::new()),
        };
        let image = ProgramImage::from_package(&package).unwrap();
        assert_eq!(
            image.argv(),
            [
                &b"/var/task/real"[..],
                b"/var/task/wrap",
                b"-a b",
                b"/var/task/bootstrap"
            ]
        );
        assert_eq!(image.exe_path(), "/var/task/real");
        assert_eq!(image.entry(), 0x40_0000);
        // A static program starts with its own path only.
        let plain = ProgramImage::parse(&program(&[(0, 200, 0x40_0000)], 200)).unwrap();
        assert_eq!(plain.argv(), [PROGRAM_PATH.as_bytes()]);
    }

    #[test]
    fn accepts_a_minimal_static_program() {
        let bytes = program(&[(0, 200, 0x40_0000)], 200);
        let image = ProgramImage::parse(&bytes).unwrap();
        assert_eq!(image.entry(), 0x40_0000);
        assert_eq!(image.image_end(), 0x40_1000);
    }

    /// Found by the `elf` fuzz target (fuzz/corpus/elf/crash-8f199ba6...): two segments
    /// staging the same file bytes at different addresses. At scale, a 4 MB file of 65,535
    /// program headers each naming the whole file would have staged 256 GB.
    #[test]
    fn rejects_segments_that_stage_the_same_file_bytes_twice() {
        let bytes = program(&[(0, 178, 0x40_0000), (0, 178, 0x60_0000)], 178);
        assert!(matches!(
            ProgramImage::parse(&bytes).unwrap_err(),
            LoadError::Malformed(message) if message.contains("overlap")
        ));
        // The same two segments over disjoint halves of the file are fine.
        let bytes = program(&[(0, 200, 0x40_0000), (200, 56, 0x60_0000)], 256);
        assert!(ProgramImage::parse(&bytes).is_ok());
    }

    #[test]
    fn rejects_other_architectures() {
        assert!(matches!(
            ProgramImage::parse(&header(1, 3)).unwrap_err(),
            LoadError::WrongArchitecture(_)
        ));
        assert!(matches!(
            ProgramImage::parse(&header(ELFCLASS64, 183)).unwrap_err(),
            LoadError::WrongArchitecture(_)
        ));
        assert!(matches!(
            ProgramImage::parse(&header(ELFCLASS64, EM_X86_64)).unwrap_err(),
            LoadError::Malformed(_)
        ));
    }
}
