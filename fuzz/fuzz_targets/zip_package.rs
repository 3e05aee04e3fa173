//! The zip package reader: the package read from arbitrary bytes as a `CodeLocation::Zip`
//! is, then its `bootstrap` checked as a program.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// Lambda's limit on unzipped code (`program::package::MAX_PROGRAM_BYTES`).
const MAX_PROGRAM_BYTES: usize = 250 << 20;

fuzz_target!(|data: &[u8]| {
    let result = lambda_vmm::fuzzing::read_zip_package(data);
    if lambda_fuzz::verbose() {
        eprintln!("{result:?}");
    }
    match result {
        Ok((files, program)) => {
            assert!(files.iter().map(|(_, size)| size).sum::<usize>() <= MAX_PROGRAM_BYTES);
            assert!(files.iter().any(|(name, _)| name == "bootstrap"));
            for (name, _) in &files {
                assert!(stays_inside(name), "{name:?} escapes /var/task");
            }
            if let Err(error) = program {
                let _ = error.to_string();
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});

/// Whether `name`, taken relative to `/var/task`, stays inside it: not absolute, and no `..`
/// climbs above where it started.
fn stays_inside(name: &str) -> bool {
    use std::path::{Component, Path};
    let mut depth = 0usize;
    for component in Path::new(name).components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return false,
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
        }
    }
    true
}
