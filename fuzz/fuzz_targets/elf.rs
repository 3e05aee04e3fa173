//! The ELF loader: `ProgramImage::parse` (the headers checked, the segments staged in a
//! memory file) on arbitrary bytes, then `entry`, `image_end` and `check_fits` for what
//! parses.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = lambda_vmm::fuzzing::parse_elf(data);
    if lambda_fuzz::verbose() {
        eprintln!("{result:?}");
    }
    match result {
        Ok(image) => {
            assert_eq!(image.image_end % 4096, 0, "{image:?}");
            assert!(image.entry < image.image_end, "{image:?}");
            assert!(image.fits_largest || !image.fits_smallest, "{image:?}");
            // Staging copies the segments' file bytes into host memory: no more than the
            // file itself, or a small file could make the host hold gigabytes.
            assert!(image.staged_bytes <= data.len() as u64, "{image:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
