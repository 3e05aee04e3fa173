//! The `syscall` instructions of a program or a library, found by decoding its code as it is
//! in its file.
//!
//! A syscall site may be rewritten to enter the VMM directly (see `syscall_sites.rs`) only if
//! it is one of these: an instruction boundary the VMM found itself, by decoding each
//! executable section (or, without section headers, each executable segment) from its start.
//! A guest that jumps into the middle of another instruction whose bytes happen to read
//! `0f 05`, or that writes those bytes into its code, cannot make the VMM rewrite anything
//! the program did not hold as a `syscall` instruction.

#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use std::collections::BTreeSet;

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

/// `SHT_PROGBITS`.
const SHT_PROGBITS: u32 = 1;
/// `SHF_EXECINSTR`.
const SHF_EXECINSTR: u64 = 4;
/// Size of an ELF64 section header.
const SECTION_HEADER_SIZE: usize = 64;

/// Code to decode: its bytes in the file, and the address its first byte is loaded at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Code<'a> {
    /// Where the first byte is in the guest.
    pub address: u64,
    /// The bytes.
    pub bytes: &'a [u8],
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The executable sections of an ELF file (`shoff`, `shnum` from its header), with the load
/// bias added to their addresses; `None` when the file has no usable section headers.
pub(crate) fn executable_sections(
    file: &[u8],
    shoff: u64,
    shnum: u16,
    bias: u64,
) -> Option<Vec<Code<'_>>> {
    let start = usize::try_from(shoff).ok().filter(|&start| start != 0)?;
    let mut sections = Vec::new();
    for index in 0..usize::from(shnum) {
        let at = start.checked_add(index.checked_mul(SECTION_HEADER_SIZE)?)?;
        let kind = u32::from_le_bytes(field(file, at.checked_add(4)?)?);
        let flags = u64::from_le_bytes(field(file, at.checked_add(8)?)?);
        let address = u64::from_le_bytes(field(file, at.checked_add(16)?)?);
        let offset = u64::from_le_bytes(field(file, at.checked_add(24)?)?);
        let size = u64::from_le_bytes(field(file, at.checked_add(32)?)?);
        if kind != SHT_PROGBITS || flags & SHF_EXECINSTR == 0 {
            continue;
        }
        let offset = usize::try_from(offset).ok()?;
        let end = offset.checked_add(usize::try_from(size).ok()?)?;
        sections.push(Code {
            address: address.checked_add(bias)?,
            bytes: file.get(offset..end)?,
        });
    }
    (!sections.is_empty()).then_some(sections)
}

/// The addresses of every `syscall` instruction a linear decode of `code` finds.
pub(crate) fn syscall_instructions(code: &[Code<'_>]) -> BTreeSet<u64> {
    let mut sites = BTreeSet::new();
    for piece in code {
        let mut decoder = Decoder::with_ip(64, piece.bytes, piece.address, DecoderOptions::NONE);
        while decoder.can_decode() {
            let instruction = decoder.decode();
            if instruction.mnemonic() == Mnemonic::Syscall {
                sites.insert(instruction.ip());
            }
        }
    }
    sites
}

/// The file offsets of every `syscall` instruction in the executable sections of the ELF
/// file `file` (a shared library a program maps): where a mapping of the file at offset `O`
/// and address `A` holds them, at `A + (offset - O)`. Empty for anything without usable
/// section headers (nothing of it is then ever rewritten).
pub(crate) fn syscall_file_offsets(file: &[u8]) -> BTreeSet<u64> {
    let header = |at: usize, len: usize| file.get(at..at.checked_add(len)?);
    if file.get(..4) != Some(b"\x7fELF".as_slice()) {
        return BTreeSet::new();
    }
    let (Some(shoff), Some(shnum)) = (header(0x28, 8), header(0x3c, 2)) else {
        return BTreeSet::new();
    };
    let shoff = u64::from_le_bytes(shoff.try_into().unwrap_or_default());
    let shnum = u16::from_le_bytes(shnum.try_into().unwrap_or_default());
    let Some(sections) = executable_sections(file, shoff, shnum, 0) else {
        return BTreeSet::new();
    };
    // Decoded at their file offsets rather than their addresses: a section's bytes are at
    // the offset where they lie in the file, whatever address the linker gave them.
    let by_offset: Vec<Code<'_>> = sections
        .iter()
        .filter_map(|section| {
            let offset = (section.bytes.as_ptr() as usize).checked_sub(file.as_ptr() as usize)?;
            Some(Code {
                address: u64::try_from(offset).ok()?,
                bytes: section.bytes,
            })
        })
        .collect();
    syscall_instructions(&by_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instruction_boundaries_count() {
        // mov rax, 0x050f (its immediate holds `0f 05`); syscall; ret
        let bytes = [
            0x48, 0xc7, 0xc0, 0x0f, 0x05, 0x00, 0x00, // mov rax, 0x50f
            0x0f, 0x05, // syscall
            0xc3, // ret
        ];
        let sites = syscall_instructions(&[Code {
            address: 0x1000,
            bytes: &bytes,
        }]);
        assert_eq!(sites.into_iter().collect::<Vec<_>>(), [0x1007]);
    }

    #[test]
    fn section_headers_name_the_code() {
        let mut file = vec![0u8; 256];
        // One executable PROGBITS section at file offset 0x80, 4 bytes, address 0x400000.
        let header = 64;
        file[header + 4..header + 8].copy_from_slice(&SHT_PROGBITS.to_le_bytes());
        file[header + 8..header + 16].copy_from_slice(&(SHF_EXECINSTR | 2).to_le_bytes());
        file[header + 16..header + 24].copy_from_slice(&0x40_0000u64.to_le_bytes());
        file[header + 24..header + 32].copy_from_slice(&0x80u64.to_le_bytes());
        file[header + 32..header + 40].copy_from_slice(&4u64.to_le_bytes());
        file[0x80..0x84].copy_from_slice(&[0x90, 0x0f, 0x05, 0xc3]);
        let sections = executable_sections(&file, 64, 2, 0x10).unwrap();
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].address, 0x40_0010);
        let sites = syscall_instructions(&sections);
        assert_eq!(sites.into_iter().collect::<Vec<_>>(), [0x40_0011]);
        assert!(executable_sections(&file, 0, 2, 0).is_none());
        // The same file as a library: the site by its file offset.
        file[..4].copy_from_slice(b"\x7fELF");
        file[0x28..0x30].copy_from_slice(&64u64.to_le_bytes());
        file[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
        let offsets = syscall_file_offsets(&file);
        assert_eq!(offsets.into_iter().collect::<Vec<_>>(), [0x81]);
        assert!(syscall_file_offsets(b"not an ELF file").is_empty());
        assert!(
            executable_sections(&file, 250, 2, 0).is_none(),
            "headers past the end"
        );
    }
}
