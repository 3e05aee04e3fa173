//! Memory calls the kernel answers at the syscall level: madvise, mremap, brk.

use super::{Guest, err};

#[test]
fn madvise_dontneed_leaves_the_programs_own_image_alone() {
    let mut guest = Guest::one_shot(b"");
    let code = guest.put(b"the program's code");
    let page = code & !4095;
    assert_eq!(guest.call(28, &[page, 4096, libc::MADV_DONTNEED as u64]), 0);
    assert_eq!(guest.get(code, 18), b"the program's code");
    // Anonymous memory is zeroed.
    let anon = guest.call(
        9,
        &[
            0,
            8192,
            3,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    ) as u64;
    guest.memory.write(anon, b"dirty").unwrap();
    assert_eq!(guest.call(28, &[anon, 8192, libc::MADV_DONTNEED as u64]), 0);
    assert_eq!(guest.get(anon, 5), [0; 5]);
    assert_eq!(guest.call(28, &[anon + 1, 4096, 4]), err(libc::EINVAL));
    assert_eq!(guest.call(28, &[anon, u64::MAX, 4]), err(libc::EINVAL));
}

#[test]
fn mremap_of_wrapping_ranges_is_refused() {
    let mut guest = Guest::one_shot(b"");
    let anon = guest.call(
        9,
        &[
            0,
            8192,
            3,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    ) as u64;
    assert_eq!(
        guest.call(25, &[anon, u64::MAX - 4095, 4096, 0]),
        err(libc::EFAULT)
    );
    assert_eq!(
        guest.call(25, &[!4095u64, 4096, 4096, 0]),
        err(libc::EFAULT)
    );
    assert_eq!(
        guest.call(25, &[anon, 8192, 4096, 0]),
        anon as i64,
        "shrinks in place"
    );
    assert_eq!(
        guest.call(25, &[anon, 4096, 16384, 1]),
        anon as i64,
        "grows in place into free room"
    );
}

#[test]
fn mincore_reports_mapped_pages_resident_and_holes_as_enomem() {
    const MMAP: u64 = 9;
    const MUNMAP: u64 = 11;
    const MINCORE: u64 = 27;
    let mut guest = Guest::one_shot(b"");
    let page = 4096;
    let area = guest.call(MMAP, &[0, 4 * page, 3, 0x22, u64::MAX, 0]) as u64;
    let vec = guest.buffer(4);
    assert_eq!(guest.call(MINCORE, &[area, 3 * page + 1, vec]), 0);
    assert_eq!(
        guest.get(vec, 4),
        [1, 1, 1, 1],
        "every page of the range, rounded up"
    );
    assert_eq!(
        guest.call(MINCORE, &[area + 1, page, vec]),
        err(libc::EINVAL)
    );
    assert_eq!(guest.call(MUNMAP, &[area + page, page]), 0);
    assert_eq!(
        guest.call(MINCORE, &[area, 2 * page, vec]),
        err(libc::ENOMEM)
    );
    assert_eq!(guest.call(MINCORE, &[area, page, 8]), err(libc::EFAULT));
}

/// A file mapped without access (`PROT_NONE`, or `PROT_SEM` alone) is mapped, as on Linux,
/// and reads the file once `mprotect` opens it. Before 2026-12-08 it failed with `ENOMEM`
/// and left a frame taken and counted that no entry held: the saved space's check refused
/// every later snapshot of the environment (found by the kernel fuzz target).
#[test]
fn a_file_mapped_without_access_reads_the_file_once_opened() {
    let mut guest = Guest::one_shot(b"");
    let fd = guest.open("/var/task/data.txt", libc::O_RDONLY) as u64;
    let private = libc::MAP_PRIVATE as u64;
    for prot in [libc::PROT_NONE as u64, 8] {
        let at = guest.call(9, &[0, 8192, prot, private, fd, 0]);
        assert!(at > 0, "mmap: {at}");
        let at = at as u64;
        super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
        assert_eq!(guest.call(10, &[at, 8192, libc::PROT_READ as u64]), 0);
        assert_eq!(guest.get(at, 11), b"0123456789\0");
        super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
        assert_eq!(guest.call(11, &[at, 8192]), 0);
        super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    }
}
