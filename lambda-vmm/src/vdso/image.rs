//! The vDSO's code: the shared object `build.rs` compiled, checked once (an ELF shared
//! object with one loadable segment at address 0, a read-only dynamic section and no
//! relocations: nothing in the guest may need to patch it) and written into the kernel area.

use std::sync::OnceLock;

use linux_loader::elf::{Elf64_Ehdr, Elf64_Phdr};

use crate::mm::layout::PAGE;

/// Most pages of code the vDSO may take (the kernel area holds this many).
pub const MAX_PAGES: u64 = 2;

/// The shared object as `build.rs` built it.
static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PF_W: u32 = 2;
const DT_NULL: u64 = 0;
const DT_RELA: u64 = 7;
const DT_REL: u64 = 17;
const DT_TEXTREL: u64 = 22;
const DT_JMPREL: u64 = 23;

/// The checked vDSO image.
#[derive(Debug)]
pub struct VdsoImage {
    bytes: &'static [u8],
}

impl VdsoImage {
    /// The image's bytes, laid out as they are mapped (the file is its own memory image).
    pub fn bytes(&self) -> &'static [u8] {
        self.bytes
    }

    /// Pages it takes.
    pub fn pages(&self) -> u64 {
        u64::try_from(self.bytes.len())
            .unwrap_or(u64::MAX)
            .div_ceil(PAGE)
    }
}

fn read<T: vm_memory::ByteValued + Default>(bytes: &[u8], offset: u64) -> Option<T> {
    let start = usize::try_from(offset).ok()?;
    let slice = bytes.get(start..start.checked_add(size_of::<T>())?)?;
    let mut value = T::default();
    value.as_mut_slice().copy_from_slice(slice);
    Some(value)
}

/// Checks the image; the text says what is wrong.
fn check(bytes: &'static [u8]) -> Result<VdsoImage, String> {
    let header: Elf64_Ehdr = read(bytes, 0).ok_or("not an ELF file")?;
    if header.e_ident.get(..4) != Some(b"\x7fELF".as_slice()) || header.e_type != 3 {
        return Err("not an ELF shared object".into());
    }
    let mut loads: u32 = 0;
    for index in 0..u64::from(header.e_phnum) {
        let offset = index
            .checked_mul(u64::from(header.e_phentsize))
            .and_then(|o| o.checked_add(header.e_phoff))
            .ok_or("bad program headers")?;
        let phdr: Elf64_Phdr = read(bytes, offset).ok_or("bad program headers")?;
        match phdr.p_type {
            PT_LOAD => {
                loads = loads.saturating_add(1);
                if phdr.p_vaddr != 0 || phdr.p_offset != 0 || phdr.p_flags & PF_W != 0 {
                    return Err("its segment is not one read-only image at address 0".into());
                }
                if phdr.p_memsz != phdr.p_filesz {
                    return Err("its segment has memory beyond the file".into());
                }
            }
            PT_DYNAMIC => {
                if phdr.p_flags & PF_W != 0 {
                    return Err("its dynamic section is writable".into());
                }
                let mut at = phdr.p_offset;
                loop {
                    let tag: u64 = read(bytes, at).ok_or("a dynamic section without end")?;
                    if matches!(tag, DT_RELA | DT_REL | DT_TEXTREL | DT_JMPREL) {
                        return Err("it has relocations".into());
                    }
                    if tag == DT_NULL {
                        break;
                    }
                    at = at.checked_add(16).ok_or("a dynamic section without end")?;
                }
            }
            _ => {}
        }
    }
    if loads != 1 {
        return Err(format!("{loads} loadable segments, not one"));
    }
    let image = VdsoImage { bytes };
    if image.pages() > MAX_PAGES {
        return Err(format!(
            "{} pages, more than the kernel area holds",
            image.pages()
        ));
    }
    Ok(image)
}

/// The vDSO image, checked on first use. A failed check is a build problem (the C compiler
/// made something unexpected), reported with what was wrong.
pub fn image() -> Result<&'static VdsoImage, &'static str> {
    static IMAGE: OnceLock<Result<VdsoImage, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| check(BYTES))
        .as_ref()
        .map_err(String::as_str)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn the_built_vdso_passes_its_checks() {
        let image = image().unwrap();
        assert!(image.pages() >= 1);
        let names = String::from_utf8_lossy(image.bytes());
        for symbol in [
            "__vdso_clock_gettime",
            "__vdso_gettimeofday",
            "__vdso_time",
            "__vdso_getcpu",
            "__vdso_clock_getres",
            "LINUX_2.6",
            "linux-vdso.so.1",
        ] {
            assert!(names.contains(symbol), "{symbol} missing");
        }
    }

    #[test]
    fn images_with_relocations_or_writable_parts_are_refused() {
        assert!(
            check(b"not elf at all, not elf at all, not elf at all, not elf at all..").is_err()
        );
        let mut bytes = BYTES.to_vec();
        // Make the dynamic section's first tag a DT_RELA.
        let header: Elf64_Ehdr = read(&bytes, 0).unwrap();
        let dynamic = (0..u64::from(header.e_phnum))
            .map(|i| read::<Elf64_Phdr>(&bytes, header.e_phoff + i * 56).unwrap())
            .find(|p| p.p_type == PT_DYNAMIC)
            .unwrap();
        let at = dynamic.p_offset as usize;
        bytes[at..at + 8].copy_from_slice(&DT_RELA.to_le_bytes());
        let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        assert_eq!(check(leaked).unwrap_err(), "it has relocations");
    }
}
