//! The address space without a VM: reservations, commits, protections, unmaps, moves and
//! the memory limit, through the syscalls and the accessor the kernel uses. (What the vCPU
//! sees of the same changes is checked with real guests in `tests/`.)

#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::layout::{CHUNK, MIN_MAP_ADDRESS, PAGE, STACK_TOP, USER_END, VDSO, VVAR};
use super::page_table::Leaf;
use super::vma::{EXEC, READ, WRITE};
use super::{FaultOutcome, FileSource, GuestMemory, MapError, PageFault};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
const FIXED: u64 = libc::MAP_FIXED as u64;
const RW: u64 = (READ | WRITE) as u64;
/// Page-fault error codes: a user-mode read, write, fetch of a page not present.
const READ_FAULT: u64 = 0x4;
const WRITE_FAULT: u64 = 0x6;
const FETCH_FAULT: u64 = 0x14;

fn memory(mb: u64) -> GuestMemory {
    crate::vm::guest_memory(mb * MIB).expect("guest memory")
}

fn touch(memory: &GuestMemory, addr: u64, len: u64) {
    let mut page = addr;
    while page < addr + len {
        memory.write(page, &[0xa5]).expect("writable");
        page += PAGE;
    }
}

fn is_large(memory: &GuestMemory, addr: u64) -> bool {
    let space = memory.space();
    matches!(
        space.tables.leaf(memory.physical(), addr),
        Some(Leaf::Large { .. })
    )
}

#[test]
fn a_reservation_of_any_size_costs_nothing() {
    let memory = memory(128);
    let committed = memory.committed_bytes();
    let reserved = memory.mmap(0, 64 * GIB, 0, ANON).unwrap();
    assert_eq!(reserved % CHUNK, 0);
    assert_eq!(memory.committed_bytes(), committed);
    assert!(
        memory.read_vec(reserved, 8).is_err(),
        "PROT_NONE is not readable"
    );
    assert_eq!(
        memory.page_fault(PageFault {
            addr: reserved + GIB,
            error_code: READ_FAULT
        }),
        FaultOutcome::Forbidden
    );
    // Committing a piece of it is an mprotect; unmapping it all is quick.
    memory.mprotect(reserved + GIB, 4 * MIB, RW).unwrap();
    touch(&memory, reserved + GIB, 4 * MIB);
    assert!(memory.committed_bytes() >= committed + 4 * MIB);
    memory.munmap(reserved, 64 * GIB).unwrap();
    // Only the page tables made on the way stay (a table keeps its place for good).
    let tables = memory.space().tables.table_frames() * PAGE;
    assert!(memory.committed_bytes() <= committed + tables);
}

#[test]
fn commits_beyond_the_memory_size_work_until_used() {
    let memory = memory(128);
    let heap = memory.mmap(0, GIB, RW, ANON).unwrap();
    touch(&memory, heap, 20 * MIB);
    assert!(is_large(&memory, heap), "a dense stretch is one large page");
    assert_eq!(memory.read_vec(heap + 20 * MIB, 4).unwrap(), [0; 4]);
    assert!(memory.resident_bytes() >= 20 * MIB);
    assert!(!memory.out_of_memory());
    // Using more than the memory size is refused: the kernel's write faults, and the
    // address space says it ran out.
    let mut failed = None;
    let mut page = heap;
    while page < heap + GIB {
        if memory.write(page, &[1]).is_err() {
            failed = Some(page);
            break;
        }
        page += PAGE;
    }
    let failed = failed.expect("128 MB cannot hold 1 GiB");
    assert!(failed - heap <= 128 * MIB, "{}", (failed - heap) >> 20);
    assert!(failed - heap >= 100 * MIB, "{}", (failed - heap) >> 20);
    assert!(memory.out_of_memory());
    assert!(memory.committed_bytes() <= 128 * MIB);
    assert_eq!(
        memory.page_fault(PageFault {
            addr: failed,
            error_code: WRITE_FAULT
        }),
        FaultOutcome::OutOfMemory
    );
}

#[test]
fn protections_are_kept_and_checked() {
    let memory = memory(128);
    let page = memory.mmap(0, 2 * PAGE, RW, ANON).unwrap();
    memory.write(page, b"data").unwrap();
    memory.mprotect(page, PAGE, READ as u64).unwrap();
    assert_eq!(memory.read_vec(page, 4).unwrap(), b"data");
    assert!(memory.write(page, b"x").is_err());
    assert!(
        memory.write(page + PAGE, b"x").is_ok(),
        "the rest stays writable"
    );
    let write = PageFault {
        addr: page,
        error_code: WRITE_FAULT | 1,
    };
    assert_eq!(memory.page_fault(write), FaultOutcome::Forbidden);
    assert_eq!(
        memory.page_fault(PageFault {
            addr: page,
            error_code: FETCH_FAULT | 1
        }),
        FaultOutcome::Forbidden,
        "not executable"
    );
    // PROT_NONE keeps the contents for when access comes back.
    memory.mprotect(page, PAGE, 0).unwrap();
    assert!(memory.read_vec(page, 4).is_err());
    memory.mprotect(page, PAGE, RW).unwrap();
    assert_eq!(memory.read_vec(page, 4).unwrap(), b"data");
    assert_eq!(memory.page_fault(write), FaultOutcome::Resolved);
    assert_eq!(
        memory.mprotect(page + 3 * PAGE, PAGE, RW),
        Err(MapError::NoMemory),
        "unmapped"
    );
    assert_eq!(memory.mprotect(page + 1, PAGE, RW), Err(MapError::Invalid));
    assert_eq!(memory.mprotect(page, PAGE, 0x10), Err(MapError::Invalid));
    let exec = (READ | EXEC) as u64;
    memory.mprotect(page, PAGE, exec).unwrap();
    assert_eq!(
        memory.page_fault(PageFault {
            addr: page,
            error_code: FETCH_FAULT | 1
        }),
        FaultOutcome::Resolved
    );
}

#[test]
fn part_of_a_large_page_can_change() {
    let memory = memory(128);
    let region = memory.mmap(0, 4 * MIB, RW, ANON).unwrap();
    memory.write(region, b"first").unwrap();
    memory.write(region + MIB, b"middle").unwrap();
    assert!(is_large(&memory, region));
    memory.mprotect(region + MIB, PAGE, READ as u64).unwrap();
    assert!(!is_large(&memory, region), "split");
    assert_eq!(memory.read_vec(region, 5).unwrap(), b"first");
    assert!(memory.write(region + MIB, b"x").is_err());
    memory.munmap(region + 2 * MIB - PAGE, PAGE).unwrap();
    assert!(memory.read_vec(region + 2 * MIB - PAGE, 1).is_err());
    assert_eq!(memory.read_vec(region + MIB, 6).unwrap(), b"middle");
}

/// An unmap that gives one large page's chunk back and splits another large page: the
/// split's new table is taken from the pool, which may hand out a frame of the chunk just
/// given back, and that chunk is wiped only once the unmap is done. Before 2026-12-08 the
/// wipe took the table's entries with it, while the stretch still counted them (found by
/// the kernel fuzz target once it saved and checked the address space).
#[test]
fn an_unmap_that_frees_one_large_page_and_splits_another_keeps_the_rest() {
    let memory = memory(16);
    let region = memory.mmap(0, 4 * MIB, RW, ANON).unwrap();
    assert_eq!(region % CHUNK, 0);
    touch(&memory, region, 4 * MIB);
    assert!(is_large(&memory, region) && is_large(&memory, region + CHUNK));
    memory.write(region + CHUNK + MIB, b"kept").unwrap();
    // The rest of the memory used up, so that a new table can only come from the chunk
    // the unmap gives back.
    let rest = memory.mmap(0, 64 * MIB, RW, ANON).unwrap();
    let mut page = rest;
    while memory.write(page, &[1]).is_ok() {
        page += PAGE;
    }
    memory.munmap(region, CHUNK + PAGE).unwrap();
    assert!(!is_large(&memory, region + CHUNK), "split");
    assert_eq!(super::saved_space_ground::save_and_check(&memory), Ok(()));
    assert_eq!(memory.read_vec(region + CHUNK + MIB, 4).unwrap(), b"kept");
}

#[test]
fn unmapped_and_dropped_memory_goes_back() {
    let memory = memory(128);
    let before = memory.committed_bytes();
    let region = memory.mmap(0, 8 * MIB, RW, ANON).unwrap();
    touch(&memory, region, 8 * MIB);
    let resident = memory.resident_bytes();
    assert!(resident >= 8 * MIB);
    memory
        .madvise(region, 8 * MIB, libc::MADV_DONTNEED as u64)
        .unwrap();
    assert!(memory.resident_bytes() < resident - 7 * MIB);
    assert_eq!(memory.read_vec(region + 3 * MIB, 4).unwrap(), [0; 4]);
    memory.munmap(region, 8 * MIB).unwrap();
    assert_eq!(memory.committed_bytes(), before);
    assert!(memory.read_vec(region, 1).is_err());
    // Small mappings use frames one by one, and give them back.
    let small = memory.mmap(0, 64 * 1024, RW, ANON).unwrap();
    touch(&memory, small, 64 * 1024);
    assert!(memory.committed_bytes() > before);
    memory.munmap(small, 64 * 1024).unwrap();
    let tables = memory.space().tables.table_frames() * PAGE;
    assert!(memory.committed_bytes() <= before + tables);
}

#[test]
fn fixed_hinted_and_refused_mappings() {
    let memory = memory(128);
    let go = 0xc0_0000_0000;
    assert_eq!(memory.mmap(go, 64 * MIB, 0, ANON), Ok(go), "a free hint");
    let taken = memory.mmap(go, PAGE, 0, ANON).unwrap();
    assert_ne!(taken, go, "a taken hint is not used");
    let base = memory.mmap(0, 4 * PAGE, RW, ANON).unwrap();
    memory.write(base + PAGE, b"old").unwrap();
    let noreplace = (libc::MAP_FIXED_NOREPLACE) as u64;
    assert_eq!(
        memory.mmap(base + PAGE, PAGE, RW, ANON | noreplace),
        Err(MapError::Exists)
    );
    assert_eq!(
        memory.mmap(base + PAGE, PAGE, RW, ANON | FIXED),
        Ok(base + PAGE)
    );
    assert_eq!(memory.read_vec(base + PAGE, 3).unwrap(), [0; 3], "replaced");
    assert_eq!(
        memory.mmap(MIN_MAP_ADDRESS - PAGE, PAGE, RW, ANON | FIXED),
        Err(MapError::Permission)
    );
    assert_eq!(
        memory.mmap(USER_END - PAGE, 2 * PAGE, RW, ANON | FIXED),
        Err(MapError::NoMemory)
    );
    assert_eq!(
        memory.mmap(0, PAGE, RW, libc::MAP_PRIVATE as u64),
        Err(MapError::NoDevice)
    );
    assert_eq!(memory.mmap(0, 0, RW, ANON), Err(MapError::Invalid));
    assert_eq!(memory.mmap(0, u64::MAX, RW, ANON), Err(MapError::NoMemory));
    assert_eq!(memory.mmap(0, PAGE, RW, 0x20), Err(MapError::Invalid));
}

#[test]
fn mremap_grows_in_place_or_moves_with_the_contents() {
    let memory = memory(128);
    let region = memory.mmap(0, 3 * MIB, RW, ANON).unwrap();
    memory.write(region, b"head").unwrap();
    memory.write(region + 3 * MIB - 4, b"tail").unwrap();
    // Block growth in place.
    let blocker = memory
        .mmap(region + 3 * MIB, PAGE, 0, ANON | FIXED)
        .unwrap();
    assert_eq!(blocker, region + 3 * MIB);
    assert_eq!(
        memory.mremap(region, 3 * MIB, 8 * MIB, 0, 0),
        Err(MapError::NoMemory)
    );
    let moved = memory.mremap(region, 3 * MIB, 8 * MIB, 1, 0).unwrap();
    assert_ne!(moved, region);
    assert_eq!(memory.read_vec(moved, 4).unwrap(), b"head");
    assert_eq!(memory.read_vec(moved + 3 * MIB - 4, 4).unwrap(), b"tail");
    assert!(memory.read_vec(region, 1).is_err(), "the old range is gone");
    memory.write(moved + 8 * MIB - 1, b"!").unwrap();
    assert_eq!(memory.mremap(moved, 8 * MIB, 4 * MIB, 0, 0), Ok(moved));
    assert!(memory.read_vec(moved + 4 * MIB, 1).is_err());
    assert_eq!(
        memory.mremap(moved, 4 * MIB, 4 * MIB, 2, 0),
        Err(MapError::Invalid),
        "MREMAP_FIXED without MAYMOVE"
    );
}

#[test]
fn the_heap_grows_and_shrinks() {
    let memory = memory(128);
    memory.space().set_heap_start(0x40_0000);
    let start = memory.brk(0);
    assert_ne!(start, 0);
    assert_eq!(memory.brk(start + 3 * MIB + 5), start + 3 * MIB + 5);
    memory.write(start + 3 * MIB, b"heap").unwrap();
    assert!(
        memory.write(start + 4 * MIB, b"x").is_err(),
        "past the break"
    );
    assert_eq!(memory.brk(start + PAGE), start + PAGE);
    assert!(memory.read_vec(start + 3 * MIB, 1).is_err(), "shrunk");
    assert_eq!(memory.brk(start - PAGE), start + PAGE, "below the start");
    assert_eq!(memory.brk(u64::MAX), start + PAGE, "absurd");
}

/// A heap right after the image, grown a page at a time the way `malloc` grows it, has its
/// pages mapped as it grows: the image's stretch already holds a whole chunk, so the first
/// touch of each new page needs no page fault (each would be a VM exit).
#[test]
fn a_heap_growing_inside_the_images_stretch_takes_no_fault_per_step() {
    use std::os::fd::AsFd;
    let memory = memory(128);
    let image = crate::host::memory_file(c"image").unwrap();
    image.set_len(64 * 1024).unwrap();
    memory
        .load_image(image.as_fd(), 0x40_0000, 64 * 1024, |_| READ | WRITE)
        .unwrap();
    let start = memory.brk(0);
    assert_eq!(start, 0x40_0000 + 64 * 1024);
    let mapped = |addr: u64| {
        let space = memory.space();
        match space.tables.leaf(memory.physical(), addr) {
            Some(Leaf::Large { .. }) => true,
            Some(Leaf::Small { entry, .. }) => entry & super::page_table::PRESENT != 0,
            None => false,
        }
    };
    for step in 1..=8 {
        let end = start + step * PAGE;
        assert_eq!(memory.brk(end), end);
        assert!(
            mapped(end - PAGE),
            "heap page {step} mapped when the break passed it"
        );
    }
    assert!(!mapped(start + 8 * PAGE), "nothing past the break");
    assert!(memory.read_vec(start + 8 * PAGE, 1).is_err());
}

#[test]
fn the_vdso_and_the_stack_are_mapped_and_the_vdso_stays_read_only() {
    let memory = memory(128);
    assert!(memory.read_vec(VDSO, 4).unwrap().starts_with(b"\x7fELF"));
    assert!(memory.read_vec(VVAR, 8).is_ok());
    assert!(memory.write(VVAR, b"x").is_err());
    assert!(memory.write(VDSO, b"x").is_err());
    assert_eq!(
        memory.mprotect(VVAR, PAGE, RW),
        Err(MapError::Access),
        "the data page never becomes writable"
    );
    assert_eq!(memory.mprotect(VDSO, PAGE, RW), Err(MapError::Access));
    memory.write(STACK_TOP - 8, b"argc!!!!").unwrap();
    assert!(memory.write(STACK_TOP, b"x").is_err());
    // Unmapping the vDSO takes it out of the program's view, not out of the kernel area.
    memory.munmap(VDSO, PAGE).unwrap();
    assert!(memory.read_vec(VDSO, 4).is_err());
}

#[test]
fn the_number_of_mappings_is_bounded() {
    let memory = memory(128);
    let base = 0x10_0000_0000u64;
    let mut made = 0;
    loop {
        // Every other page, so they cannot merge.
        match memory.mmap(base + made * 2 * PAGE, PAGE, 0, ANON | FIXED) {
            Ok(_) => made += 1,
            Err(error) => {
                assert_eq!(error, MapError::NoMemory);
                break;
            }
        }
        assert!(made <= super::space::MAX_MAPPINGS as u64);
    }
    assert!(made > super::space::MAX_MAPPINGS as u64 - 10);
}

#[test]
fn the_kernel_accessor_checks_every_page_of_a_range() {
    let memory = memory(128);
    let region = memory.mmap(0, 3 * PAGE, RW, ANON).unwrap();
    memory.munmap(region + PAGE, PAGE).unwrap();
    assert!(memory.write(region, &[0; 3 * PAGE as usize]).is_err());
    assert!(memory.read_vec(region + PAGE - 2, 4).is_err());
    assert!(memory.read_vec(u64::MAX - 1, 4).is_err());
    assert!(
        memory.read_vec(0, 0).is_ok(),
        "an empty range touches nothing"
    );
    memory.write(region + 2 * PAGE, b"a\0").unwrap();
    assert_eq!(
        memory
            .read_c_string(region + 2 * PAGE, 10)
            .unwrap()
            .unwrap(),
        b"a"
    );
    assert!(memory.validate(region, 3 * PAGE).is_err());
    assert!(memory.validate(region, PAGE).is_ok());
}

#[test]
fn frozen_files_map_shared_in_their_area_and_their_syscall_sites_go_with_the_mapping() {
    let memory = memory(128);
    let bytes: Vec<u8> = (0..3 * PAGE + 100).map(|i| (i % 251) as u8).collect();
    let file = crate::host::FrozenFile::new(c"test-library", &bytes).unwrap();
    let private = libc::MAP_PRIVATE as u64;
    let rx = (READ | EXEC) as u64;
    // Two syscall sites in the file, one in the page mapped from offset PAGE.
    let sites: std::collections::BTreeSet<u64> = [PAGE + 16, 3 * PAGE + 8].into();
    let source = |syscall_offsets| FileSource {
        file: &file,
        offset: PAGE,
        syscall_offsets,
    };
    let at = memory
        .mmap_file(0, 2 * PAGE, rx, private, source(Some(&sites)))
        .unwrap();
    // Placed in the file area, below the interpreter, and filled from the offset.
    assert!(at < super::space::FILE_MAP_TOP && at > super::space::FILE_MAP_TOP - 64 * MIB);
    assert_eq!(memory.read_vec(at, 4).unwrap(), bytes[PAGE as usize..][..4]);
    // The rest of the last page past the file's end reads zero.
    let tail = memory.read_vec(at + PAGE + 100, 16).unwrap();
    assert_eq!(tail, bytes[(2 * PAGE + 100) as usize..][..16]);
    assert!(memory.is_library_site(at + 16));
    assert!(
        !memory.is_library_site(at + 2 * PAGE + 8),
        "past the mapping"
    );
    memory.check_mappings().unwrap();
    // Unmapping drops the site: what is mapped there next is not the library.
    memory.munmap(at, 2 * PAGE).unwrap();
    assert!(!memory.is_library_site(at + 16));
    memory.check_mappings().unwrap();
    // So a snapshot file's sites must lie in mappings, and be no more than are noted.
    memory.space().library_sites.insert(at + 16);
    let why = memory.check_mappings().unwrap_err();
    assert!(
        why.contains(&format!(
            "library syscall site at {:#x} lies in no mapping",
            at + 16
        )),
        "{why}"
    );
    let most = super::space::MAX_LIBRARY_SITES as u64;
    // As many as a program may have noted, all on the stack's mapping, pass; one more not.
    memory.space().library_sites = (1..=most).map(|i| STACK_TOP - i).collect();
    memory.check_mappings().unwrap();
    memory.space().library_sites.insert(STACK_TOP - most - 1);
    let why = memory.check_mappings().unwrap_err();
    assert!(
        why.contains("notes 65537 library syscall sites, more than 65536"),
        "{why}"
    );
    // Without executable protection nothing is noted.
    let again = memory
        .mmap_file(0, PAGE, READ as u64, private, source(None))
        .unwrap();
    assert!(!memory.is_library_site(again + 16));
}

#[test]
fn a_copy_put_back_restores_mappings_contents_protections_and_the_break() {
    let memory = memory(128);
    memory.space().set_heap_start(0x40_0000);
    let heap = memory.brk(0);
    assert_eq!(memory.brk(heap + 3 * PAGE), heap + 3 * PAGE);
    memory.write(heap + PAGE, b"heap").unwrap();
    let big = memory.mmap(0, 3 * MIB, RW, ANON).unwrap();
    memory.write(big + MIB, b"big").unwrap();
    let small = memory.mmap(0, 2 * PAGE, RW, ANON).unwrap();
    memory.write(small, b"small").unwrap();
    memory.mprotect(small, PAGE, READ as u64).unwrap();
    // Kept while no access is allowed.
    memory.mprotect(small + PAGE, PAGE, RW).unwrap();
    memory.write(small + PAGE, b"hidden").unwrap();
    memory.mprotect(small + PAGE, PAGE, 0).unwrap();
    memory.write(STACK_TOP - PAGE, b"stack").unwrap();
    let mappings = memory.space().vmas.len();
    let copy = memory.copy_out();

    // A child changes everything: writes, unmaps, maps anew, moves the break.
    memory.write(heap + PAGE, b"HEAP").unwrap();
    memory.munmap(big, 3 * MIB).unwrap();
    let other = memory.mmap(0, 5 * PAGE, RW, ANON).unwrap();
    memory.write(other, b"child").unwrap();
    memory.write(STACK_TOP - PAGE, b"STACK").unwrap();
    memory.brk(heap + 40 * PAGE);

    memory.copy_back(&copy).unwrap();
    assert_eq!(memory.read_vec(heap + PAGE, 4).unwrap(), b"heap");
    assert_eq!(memory.read_vec(big + MIB, 3).unwrap(), b"big");
    assert_eq!(
        memory.read_vec(big, 4).unwrap(),
        [0; 4],
        "untouched pages read zero"
    );
    assert_eq!(memory.read_vec(small, 5).unwrap(), b"small");
    assert_eq!(memory.read_vec(STACK_TOP - PAGE, 5).unwrap(), b"stack");
    assert_eq!(memory.brk(0), heap + 3 * PAGE);
    assert_eq!(memory.space().vmas.len(), mappings);
    if other != small && !(big..big + 3 * MIB).contains(&other) {
        assert!(
            memory.read_vec(other, 5).is_err(),
            "the child's mapping is gone"
        );
    }
    // Protections hold: the read-only page cannot be written, the PROT_NONE one not read,
    // and once readable again it holds what it held.
    assert!(memory.write(small, b"x").is_err());
    assert!(memory.read_vec(small + PAGE, 6).is_err());
    memory.mprotect(small + PAGE, PAGE, READ as u64).unwrap();
    assert_eq!(memory.read_vec(small + PAGE, 6).unwrap(), b"hidden");
    assert!(memory.read_vec(VDSO, 4).is_ok(), "the vDSO stays");
    assert!(
        copy.bytes() >= 5 * PAGE && copy.bytes() < 16 * PAGE,
        "{}",
        copy.bytes()
    );
}

#[test]
fn a_restored_memory_tells_which_pages_were_touched_since_and_how() {
    let original = memory(128);
    let pages = original.mmap(0, 4 * PAGE, RW, ANON).unwrap();
    touch(&original, pages, 4 * PAGE);
    original
        .mprotect(pages + 3 * PAGE, PAGE, READ as u64)
        .unwrap();
    let file = crate::host::sealable_memory_file(c"touched-test").expect("memfd");
    let saved = original.save(&file).expect("save");
    let restored = memory(128);
    restored.restore(&file, &saved).expect("restore");
    let of_program = |memory: &GuestMemory| -> Vec<super::PageTouch> {
        let touched = memory.touched_pages().expect("pagemap");
        // The vDSO's pages are always in.
        assert!(touched.iter().any(|touch| touch.va == VDSO && !touch.write));
        touched
            .into_iter()
            .filter(|touch| touch.va < VVAR)
            .collect()
    };
    // Reading the page tables maps their neighbours for reading too (the host's fault-around
    // of file pages), which may include the program's pages: none is written yet.
    assert!(of_program(&restored).iter().all(|touch| !touch.write));
    assert_eq!(restored.read_vec(pages, 1).unwrap(), [0xa5]);
    restored.write(pages + PAGE, &[0x5a]).unwrap();
    assert_eq!(restored.read_vec(pages + 3 * PAGE, 1).unwrap(), [0xa5]);
    let touch = |va, write| super::PageTouch { va, write };
    let touched = of_program(&restored);
    for expected in [
        touch(pages, false),
        touch(pages + PAGE, true),
        touch(pages + 3 * PAGE, false),
    ] {
        assert!(touched.contains(&expected), "{expected:?} in {touched:?}");
    }
    let written: Vec<_> = touched.iter().filter(|touch| touch.write).collect();
    assert_eq!(written, [&touch(pages + PAGE, true)]);
    assert!(touched.windows(2).all(|pair| pair[0].va < pair[1].va));
    // What the page tables allow now: a read-only page is read, an unmapped one skipped.
    assert_eq!(
        restored.may_touch(touch(pages + 3 * PAGE, true)),
        Some(touch(pages + 3 * PAGE, false))
    );
    assert_eq!(
        restored.may_touch(touch(pages + PAGE, true)),
        Some(touch(pages + PAGE, true))
    );
    restored.munmap(pages + 2 * PAGE, PAGE).unwrap();
    assert_eq!(restored.may_touch(touch(pages + 2 * PAGE, false)), None);
    assert_eq!(restored.may_touch(touch(USER_END - 4 * GIB, false)), None);
}

#[test]
fn a_restored_memory_tells_which_frames_were_touched_and_another_copies_them_in() {
    let original = memory(128);
    let pages = original.mmap(0, 4 * PAGE, RW, ANON).unwrap();
    touch(&original, pages, 4 * PAGE);
    let file = crate::host::sealable_memory_file(c"written-test").expect("memfd");
    let saved = original.save(&file).expect("save");
    let frame_of =
        |memory: &GuestMemory, va: u64| match memory.space().tables.leaf(&memory.physical, va) {
            Some(Leaf::Small { entry, .. }) => entry & super::page_table::ADDRESS,
            other => panic!("{va:#x} is not a small page: {other:?}"),
        };
    let restored = memory(128);
    restored.restore(&file, &saved).expect("restore");
    assert_eq!(restored.read_vec(pages, 1).unwrap(), [0xa5]);
    restored.write(pages + PAGE, &[0x5a]).unwrap();
    let touched = restored.touched_frames().expect("pagemap");
    let written = touched.written.clone();
    let within = |runs: &[(u64, u64)], frame: u64| {
        runs.iter()
            .any(|&(start, len)| frame >= start && frame < start + len)
    };
    let contains = |frame: u64| within(&written, frame);
    // The page only read is among the frames read, apart from the written ones.
    assert!(
        within(&touched.read, frame_of(&restored, pages)),
        "{touched:?}"
    );
    assert!(!within(&touched.read, frame_of(&restored, pages + PAGE)));
    assert!(contains(frame_of(&restored, pages + PAGE)), "{written:?}");
    assert!(
        !contains(frame_of(&restored, pages)),
        "only read: {written:?}"
    );
    assert!(
        !contains(frame_of(&restored, pages + 2 * PAGE)),
        "{written:?}"
    );
    let count: u64 = written.iter().map(|&(_, len)| len / PAGE).sum();
    assert!(
        count < 8,
        "the page written and page-table frames: {written:?}"
    );
    assert!(
        written
            .windows(2)
            .all(|pair| pair[0].0 + pair[0].1 < pair[1].0)
    );

    // Another memory restored from the same file holds private copies of those frames once
    // they are copied in, before anything writes them, with the snapshot's contents.
    let other = memory(128);
    other.restore(&file, &saved).expect("restore");
    assert_eq!(other.populate_frames(&written), count as usize);
    let outside = [(other.size(), PAGE), (3, PAGE), (u64::MAX - PAGE + 1, PAGE)];
    assert_eq!(other.populate_frames(&outside), 0);
    let frame = frame_of(&other, pages + PAGE);
    assert_eq!(
        other.physical.mapped_pages(frame, PAGE).unwrap(),
        [Some(true)],
        "copied in"
    );
    // Read only by the first run: at most mapped for reading (fault-around), not copied.
    assert_ne!(
        other
            .physical
            .mapped_pages(frame_of(&other, pages), PAGE)
            .unwrap(),
        [Some(true)],
        "not copied"
    );
    assert_eq!(other.read_vec(pages + PAGE, 1).unwrap(), [0xa5]);
    // Copied in as well, the frame read holds the snapshot's contents in a page of its own.
    assert!(other.populate_frames(&touched.read) >= 1);
    assert_eq!(
        other
            .physical
            .mapped_pages(frame_of(&other, pages), PAGE)
            .unwrap(),
        [Some(true)],
        "copied in"
    );
    assert_eq!(other.read_vec(pages, 1).unwrap(), [0xa5]);
}

#[test]
fn a_memory_made_over_the_snapshot_file_is_the_restored_memory() {
    use crate::mm::physical::PhysicalMemory;
    let original = memory(128);
    let pages = original.mmap(0, 4 * PAGE, RW, ANON).unwrap();
    touch(&original, pages, 4 * PAGE);
    original.write(pages + 2 * PAGE, b"stored").unwrap();
    let file = crate::host::sealable_memory_file(c"over-file-test").expect("memfd");
    let saved = original.save(&file).expect("save");

    let made = GuestMemory::restored(
        PhysicalMemory::over_file(128 * MIB, &file).expect("over the file"),
        &saved,
    );
    // The saved address space, its page tables read from the file's pages.
    assert_eq!(made.read_vec(pages, 1).unwrap(), [0xa5]);
    assert_eq!(made.read_vec(pages + 2 * PAGE, 6).unwrap(), b"stored");
    assert!(made.read_vec(pages + 4 * PAGE, 1).is_err(), "not mapped");
    // Nothing is copied until written, and a write stays in this memory.
    assert!(made.touched_frames().expect("pagemap").written.is_empty());
    made.write(pages + 2 * PAGE, b"mine").unwrap();
    assert_eq!(made.touched_frames().expect("pagemap").written.len(), 1);
    let other = memory(128);
    other.restore(&file, &saved).expect("restore");
    assert_eq!(other.read_vec(pages + 2 * PAGE, 6).unwrap(), b"stored");
    // Discarding pages that show the file maps fresh memory over them.
    made.munmap(pages + 2 * PAGE, PAGE).unwrap();
    let again = made.mmap(pages + 2 * PAGE, PAGE, RW, ANON | libc::MAP_FIXED as u64);
    assert_eq!(again.unwrap(), pages + 2 * PAGE);
    assert_eq!(made.read_vec(pages + 2 * PAGE, 6).unwrap(), [0; 6]);

    // A file of another size is refused before anything is mapped.
    let refused = PhysicalMemory::over_file(256 * MIB, &file)
        .err()
        .expect("refused");
    let message = std::error::Error::source(&refused).unwrap().to_string();
    assert!(message.contains("not 268435456"), "{message}");
}

/// Everything the page tables reach is in a memory slot (`slots.rs`), through growth of the
/// heap and of mappings large and small, unmaps, moves and a fill to the memory limit, in a
/// memory whose last chunk is short (it is a slot of its own).
#[test]
fn the_page_tables_reach_only_memory_in_slots() {
    let memory = crate::vm::guest_memory(129 * MIB).expect("guest memory");
    assert!(memory.uncovered().is_empty());
    let heap = memory.brk(0);
    let grown = memory.brk(heap + 20 * MIB);
    touch(&memory, heap, grown - heap);
    assert!(memory.uncovered().is_empty(), "the heap");
    let small = memory.mmap(0, 64 * PAGE, RW, ANON).unwrap();
    touch(&memory, small, 64 * PAGE);
    let large = memory.mmap(0, 40 * MIB, RW, ANON).unwrap();
    touch(&memory, large, 40 * MIB);
    assert!(memory.uncovered().is_empty(), "the mappings");
    memory.munmap(small, 32 * PAGE).unwrap();
    let moved = memory.mremap(large, 40 * MIB, 48 * MIB, 1, 0).unwrap();
    touch(&memory, moved, 48 * MIB);
    assert!(memory.uncovered().is_empty(), "after munmap and mremap");
    let rest = memory.mmap(0, 128 * MIB, RW, ANON).unwrap();
    let mut page = rest;
    while page < rest + 128 * MIB && memory.write(page, &[1]).is_ok() {
        page += PAGE;
    }
    assert!(memory.out_of_memory() || page == rest + 128 * MIB);
    assert!(memory.uncovered().is_empty(), "at the memory limit");
    assert!(memory.physical().covers(0, 129 * MIB), "all of it in use");
}
