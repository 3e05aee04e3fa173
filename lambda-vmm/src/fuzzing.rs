//! Entry points for the fuzz targets in `fuzz/` at the workspace root. Not an API: this
//! module exists only with the `fuzzing` feature, is hidden from the documentation, and
//! changes with the targets. It reaches the private `program` module, whose readers take the
//! guest's untrusted bytes: the package (a zip) and the ELF file in it.

use std::io::Cursor;

use crate::program::{LoadError, ProgramImage, read_zip};

/// What a checked ELF image looks like, for a fuzz target to check its invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfSummary {
    /// The entry point, after relocation.
    pub entry: u64,
    /// One past the highest loaded byte (page-aligned): where brk starts.
    pub image_end: u64,
    /// Bytes of the file copied into the staged image: host memory the program holds.
    pub staged_bytes: u64,
    /// Whether the image fits a function of the smallest memory size (128 MB).
    pub fits_smallest: bool,
    /// Whether the image fits a function of the largest memory size (10,240 MB).
    pub fits_largest: bool,
}

/// Checks `bytes` as a program, as [`crate::MicroVmBackend`] does with a function's code
/// (`ProgramImage::parse`: the headers checked, the segments staged in a memory file), then
/// asks whether it fits the smallest and largest memory sizes.
pub fn parse_elf(bytes: &[u8]) -> Result<ElfSummary, LoadError> {
    let image = ProgramImage::parse(bytes)?;
    let fits = |mb: u64| image.check_fits(mb << 20).is_ok();
    Ok(ElfSummary {
        entry: image.entry(),
        image_end: image.image_end(),
        staged_bytes: image.staged_bytes(),
        fits_smallest: fits(128),
        fits_largest: fits(10_240),
    })
}

/// Reads `bytes` as a zip package, as a `CodeLocation::Zip` is read, then checks its
/// `bootstrap` as a program. Returns the files' paths (relative to `/var/task`) and sizes,
/// and what checking the program gave.
#[allow(clippy::type_complexity)]
pub fn read_zip_package(
    bytes: &[u8],
) -> Result<(Vec<(String, usize)>, Result<ElfSummary, LoadError>), LoadError> {
    let package = read_zip(Cursor::new(bytes), "fuzz.zip")?;
    let files = package
        .files
        .iter()
        .map(|(name, contents)| (name.clone(), contents.len()))
        .collect();
    Ok((files, parse_elf(&package.program)))
}
