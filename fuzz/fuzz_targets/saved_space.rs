//! A snapshot file's saved address space: a small memory's page tables, frame pool and
//! backings, changed 8 bytes at a time, through `SavedSpace::check` (what loading a
//! snapshot file checks); what the check lets through is restored and walked as the VMM
//! walks it, then unmapped and mapped again as a program would, which must not panic or
//! fail, and the memory mapped again must read as zero.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = lambda_vmm::fuzzing::saved_space(data);
    if lambda_fuzz::verbose() {
        eprintln!("{result:?}");
    }
    if let Err(error) = result {
        panic!("{error}");
    }
});
