//! Files, directories and descriptors: `/var/task` read-only, `/tmp` writable, Linux's errors.

use super::{Guest, err};
use crate::kernel::vfs::NAME_MAX;

const O_RDONLY: i32 = libc::O_RDONLY;
const O_RDWR_CREAT: i32 = libc::O_RDWR | libc::O_CREAT;
const CLOSE: u64 = 3;
const PREAD: u64 = 17;
const PWRITE: u64 = 18;
const DUP: u64 = 32;
const RENAME: u64 = 82;
const MKDIR: u64 = 83;
const RMDIR: u64 = 84;
const UNLINK: u64 = 87;

#[test]
fn stdin_is_the_event_and_zero_length_reads_need_no_buffer() {
    let mut guest = Guest::one_shot(b"the event");
    assert_eq!(guest.call(0, &[0, 0, 0]), 0, "read(0, NULL, 0)");
    let buf = guest.buffer(4);
    assert_eq!(guest.call(0, &[0, buf, 4]), 4);
    assert_eq!(guest.get(buf, 4), b"the ");
    let rest = guest.buffer(64);
    assert_eq!(guest.call(0, &[0, rest, 64]), 5);
    assert_eq!(guest.get(rest, 5), b"event");
    assert_eq!(guest.call(0, &[0, rest, 64]), 0, "end of file");
    assert_eq!(guest.call(1, &[1, 0, 0]), 0, "write(1, NULL, 0)");
    assert_eq!(
        guest.call(0, &[0, 0x10, 8]),
        err(libc::EFAULT),
        "a real NULL read"
    );
}

#[test]
fn a_held_event_makes_stdin_wait_until_it_is_delivered() {
    use crate::kernel::Step;
    let mut guest = Guest::one_shot(b"");
    guest.kernel.hold_stdin();
    let buf = guest.buffer(16);
    // poll(stdin, POLLIN, 0): not readable yet.
    let pollfd = guest.put(&[0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(guest.call(7, &[pollfd, 1, 0]), 0);
    assert!(!guest.kernel.stdin_awaited());
    assert!(matches!(guest.step(0, &[0, buf, 16]), Step::Block(None)));
    assert!(guest.kernel.stdin_awaited());
    guest.kernel.deliver_stdin(b"late event".to_vec());
    assert!(!guest.kernel.stdin_awaited());
    assert_eq!(guest.call(0, &[0, buf, 16]), 10, "the retried read");
    assert_eq!(guest.get(buf, 10), b"late event");
    assert_eq!(guest.call(7, &[pollfd, 1, 0]), 1);
}

#[test]
fn reads_and_writes_at_offsets() {
    let mut guest = Guest::one_shot(b"");
    let fd = guest.open("/tmp/f", O_RDWR_CREAT) as u64;
    let hello = guest.put(b"hello world");
    assert_eq!(guest.call(1, &[fd, hello, 11]), 11);
    let buf = guest.buffer(16);
    assert_eq!(guest.call(17, &[fd, buf, 5, 6]), 5, "pread");
    assert_eq!(guest.get(buf, 5), b"world");
    let upper = guest.put(b"HELLO");
    assert_eq!(guest.call(18, &[fd, upper, 5, 0]), 5, "pwrite");
    // Negative offsets are refused, as Linux refuses them.
    assert_eq!(
        guest.call(17, &[fd, buf, 5, -1i64 as u64]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(18, &[fd, upper, 5, u64::MAX - 2]),
        err(libc::EINVAL)
    );
    // lseek: SEEK_SET, SEEK_END, a negative result, and SEEK_DATA.
    assert_eq!(guest.call(8, &[fd, 0, libc::SEEK_SET as u64]), 0);
    assert_eq!(guest.call(0, &[fd, buf, 16]), 11);
    assert_eq!(guest.get(buf, 11), b"HELLO world");
    assert_eq!(guest.call(8, &[fd, -3i64 as u64, libc::SEEK_END as u64]), 8);
    assert_eq!(
        guest.call(8, &[fd, -100i64 as u64, libc::SEEK_CUR as u64]),
        err(libc::EINVAL)
    );
    assert_eq!(guest.call(8, &[fd, 0, 3]), err(libc::EINVAL), "SEEK_DATA");
    // A write past the /tmp quota, and at an offset no file can reach.
    assert_eq!(guest.call(18, &[fd, upper, 5, 2 << 20]), err(libc::ENOSPC));
    assert_eq!(
        guest.call(18, &[fd, upper, 5, i64::MAX as u64 - 2]),
        err(libc::EFBIG)
    );
}

#[test]
fn the_code_is_read_only_and_nothing_else_exists() {
    let mut guest = Guest::one_shot(b"");
    assert_eq!(
        guest.open("/var/task/bootstrap", libc::O_RDWR),
        err(libc::EROFS)
    );
    assert_eq!(guest.open("/var/task/new", O_RDWR_CREAT), err(libc::EROFS));
    assert_eq!(guest.open("/etc/passwd", O_RDONLY), err(libc::ENOENT));
    assert_eq!(
        guest.open("/var/task/../../etc/passwd", O_RDONLY),
        err(libc::ENOENT)
    );
    let fd = guest.open("data.txt", O_RDONLY) as u64; // relative to /var/task
    let buf = guest.buffer(4);
    assert_eq!(guest.call(17, &[fd, buf, 4, 6]), 4);
    assert_eq!(guest.get(buf, 4), b"6789");
    // faccessat: existence, and W_OK on read-only code.
    let code = guest.put_str("/var/task/bootstrap");
    let cwd = libc::AT_FDCWD as u64;
    assert_eq!(guest.call(269, &[cwd, code, libc::R_OK as u64]), 0);
    assert_eq!(
        guest.call(269, &[cwd, code, libc::W_OK as u64]),
        err(libc::EROFS)
    );
    assert_eq!(guest.call(269, &[cwd, code, 0o70]), err(libc::EINVAL));
    // O_TMPFILE's own bit without O_DIRECTORY: Linux's EINVAL (the tests below make one).
    assert_eq!(
        guest.open("/tmp/x", libc::O_RDWR | 0o20_000_000),
        err(libc::EINVAL)
    );
}

#[test]
fn names_longer_than_linux_allows_are_refused() {
    let mut guest = Guest::one_shot(b"");
    let long = format!("/tmp/{}", "n".repeat(NAME_MAX + 1));
    assert_eq!(guest.open(&long, O_RDWR_CREAT), err(libc::ENAMETOOLONG));
    let fine = format!("/tmp/{}", "n".repeat(NAME_MAX));
    assert!(guest.open(&fine, O_RDWR_CREAT) >= 0);
    let unterminated = guest.put(&vec![b'a'; 8192]);
    assert_eq!(
        guest.call(257, &[libc::AT_FDCWD as u64, unterminated, 0, 0]),
        err(libc::ENAMETOOLONG)
    );
}

#[test]
fn renames_follow_linux_and_descriptors_follow_them() {
    let mut guest = Guest::one_shot(b"");
    let cwd = libc::AT_FDCWD as u64;
    let (dir, inner, moved) = (
        guest.put_str("/tmp/d"),
        guest.put_str("/tmp/d/e"),
        guest.put_str("/tmp/moved"),
    );
    assert_eq!(guest.call(83, &[dir, 0o755]), 0, "mkdir");
    let fd = guest.open("/tmp/d/file", O_RDWR_CREAT) as u64;
    let data = guest.put(b"kept");
    assert_eq!(guest.call(1, &[fd, data, 4]), 4);
    // A directory into itself: EINVAL. Flags: WHITEOUT and unknown bits refused.
    assert_eq!(
        guest.call(316, &[cwd, dir, cwd, inner, 0]),
        err(libc::EINVAL)
    );
    assert_eq!(
        guest.call(316, &[cwd, dir, cwd, moved, 4]),
        err(libc::EINVAL)
    );
    // A non-empty directory moves; the open file follows it.
    assert_eq!(guest.call(82, &[dir, moved]), 0);
    let buf = guest.buffer(4);
    assert_eq!(guest.call(17, &[fd, buf, 4, 0]), 4);
    assert_eq!(guest.get(buf, 4), b"kept");
    assert!(guest.open("/tmp/moved/file", O_RDONLY) >= 0);
    // NOREPLACE over an existing path.
    let other = guest.put_str("/tmp/other");
    assert!(guest.open("/tmp/other", O_RDWR_CREAT) >= 0);
    assert_eq!(
        guest.call(316, &[cwd, other, cwd, moved, 1]),
        err(libc::EEXIST)
    );
    // EXCHANGE swaps.
    assert_eq!(guest.call(316, &[cwd, other, cwd, moved, 2]), 0);
    assert!(guest.open("/tmp/other/file", O_RDONLY) >= 0);
}

#[test]
fn directories_list_their_entries() {
    let mut guest = Guest::one_shot(b"");
    for name in ["a", "b"] {
        assert!(guest.open(&format!("/tmp/{name}"), O_RDWR_CREAT) >= 0);
    }
    let fd = guest.open("/tmp", O_RDONLY | libc::O_DIRECTORY) as u64;
    let buf = guest.buffer(4096);
    let n = guest.call(217, &[fd, buf, 4096]);
    assert!(n > 0);
    let bytes = guest.get(buf, n as usize);
    let mut names = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let reclen = u16::from_le_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
        let name: Vec<u8> = bytes[at + 19..at + reclen]
            .iter()
            .take_while(|&&b| b != 0)
            .copied()
            .collect();
        names.push(String::from_utf8(name).unwrap());
        assert_eq!(reclen % 8, 0);
        at += reclen;
    }
    assert_eq!(names, [".", "..", "a", "b"]);
    assert_eq!(guest.call(217, &[fd, buf, 4096]), 0, "then the end");
    assert_eq!(
        guest.call(217, &[fd, buf, 4]),
        0,
        "still the end, however small the buffer"
    );
}

#[test]
fn descriptors_are_bounded_and_dup_shares_the_description() {
    let mut guest = Guest::one_shot(b"");
    let fd = guest.open("/tmp/f", O_RDWR_CREAT) as u64;
    let copy = guest.call(32, &[fd]) as u64;
    let data = guest.put(b"abc");
    assert_eq!(guest.call(1, &[fd, data, 3]), 3);
    assert_eq!(
        guest.call(8, &[copy, 0, libc::SEEK_CUR as u64]),
        3,
        "one offset for both"
    );
    assert_eq!(
        guest.call(72, &[fd, libc::F_DUPFD as u64, 5000]),
        err(libc::EINVAL)
    );
    let mut last = 0;
    for _ in 0..2000 {
        last = guest.call(32, &[fd]);
        if last < 0 {
            break;
        }
    }
    assert_eq!(last, err(libc::EMFILE));
    assert_eq!(guest.call(3, &[1_000_000]), err(libc::EBADF));
}

#[test]
fn fadvise_is_a_checked_hint_and_dev_null_swallows_writes() {
    const FADVISE64: u64 = 221;
    const READ: u64 = 0;
    const WRITE: u64 = 1;
    const GETPGRP: u64 = 111;
    let mut guest = Guest::one_shot(b"");
    let file = guest.open("/var/task/data.txt", O_RDONLY) as u64;
    assert_eq!(guest.call(FADVISE64, &[file, 0, 0, 2]), 0);
    assert_eq!(guest.call(FADVISE64, &[file, 0, 0, 9]), err(libc::EINVAL));
    assert_eq!(guest.call(FADVISE64, &[1, 0, 0, 2]), err(libc::ESPIPE));
    assert_eq!(guest.call(FADVISE64, &[99, 0, 0, 2]), err(libc::EBADF));
    let null = guest.open("/dev/null", libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64;
    let data = guest.put(b"gone");
    assert_eq!(guest.call(WRITE, &[null, data, 4]), 4);
    assert_eq!(guest.call(READ, &[null, data, 4]), 0);
    // As Linux: nothing is read, but the range must be the program's, and one write takes
    // at most MAX_RW_COUNT bytes. A count past 2^63 was once answered as it was, which the
    // program read as a negative result (found by the kernel fuzz target).
    let user_end = crate::mm::layout::USER_END;
    assert_eq!(guest.call(WRITE, &[null, 1, 1 << 40]), 0x7fff_f000);
    assert_eq!(guest.call(WRITE, &[null, 1, user_end - 1]), 0x7fff_f000);
    assert_eq!(guest.call(WRITE, &[null, 1, user_end]), err(libc::EFAULT));
    assert_eq!(
        guest.call(WRITE, &[null, 1, 0xffff_ff01_0153_b72c]),
        err(libc::EFAULT)
    );
    assert_eq!(guest.call(WRITE, &[null, u64::MAX, 2]), err(libc::EFAULT));
    assert_eq!(
        guest.open("/dev/null", libc::O_RDONLY | libc::O_DIRECTORY),
        err(libc::ENOTDIR)
    );
    assert_eq!(guest.call(GETPGRP, &[]), 1);
}

#[test]
fn fchdir_statfs_and_umask() {
    const FCHDIR: u64 = 81;
    const UMASK: u64 = 95;
    const STATFS: u64 = 137;
    const FSTATFS: u64 = 138;
    const GETCWD: u64 = 79;
    let mut guest = Guest::one_shot(b"");
    let dir = guest.open("/tmp", libc::O_RDONLY | libc::O_DIRECTORY) as u64;
    assert_eq!(guest.call(FCHDIR, &[dir]), 0);
    let cwd = guest.buffer(16);
    assert_eq!(guest.call(GETCWD, &[cwd, 16]), 5);
    assert_eq!(guest.get(cwd, 5), b"/tmp\0");
    let file = guest.open("/var/task/data.txt", O_RDONLY) as u64;
    assert_eq!(guest.call(FCHDIR, &[file]), err(libc::ENOTDIR));
    assert_eq!(guest.call(FCHDIR, &[99]), err(libc::EBADF));
    // /tmp: a tmpfs of the quota; elsewhere read-only.
    let buf = guest.buffer(120);
    let tmp = guest.put_str("/tmp");
    assert_eq!(guest.call(STATFS, &[tmp, buf]), 0);
    let word = |guest: &Guest, index: u64| {
        u64::from_le_bytes(guest.get(buf + 8 * index, 8).try_into().unwrap())
    };
    assert_eq!(word(&guest, 0), 0x0102_1994);
    assert_eq!(
        word(&guest, 2),
        (1 << 20) / 4096,
        "the pretend quota: 1 MiB"
    );
    assert_eq!(word(&guest, 10), 0, "writable");
    assert_eq!(guest.call(FSTATFS, &[file, buf]), 0);
    assert_eq!(word(&guest, 10), 1, "ST_RDONLY");
    let missing = guest.put_str("/nowhere");
    assert_eq!(guest.call(STATFS, &[missing, buf]), err(libc::ENOENT));
    assert_eq!(guest.call(STATFS, &[tmp, 8]), err(libc::EFAULT));
    assert_eq!(guest.call(UMASK, &[0o077]), 0o022);
    assert_eq!(guest.call(UMASK, &[0o7777]), 0o077);
    assert_eq!(guest.call(UMASK, &[0]), 0o777);
}

/// What `pread(fd, 0)` gives, up to `len` bytes.
fn read_back(guest: &mut Guest, fd: u64, len: usize) -> Vec<u8> {
    let buf = guest.buffer(len);
    let n = guest.call(PREAD, &[fd, buf, len as u64, 0]);
    assert!(n >= 0, "pread: {n}");
    guest.get(buf, n as usize)
}

#[test]
fn a_file_removed_while_open_is_kept_for_its_descriptors_until_the_last_closes() {
    let mut guest = Guest::one_shot(b"");
    let fd = guest.open("/tmp/f", O_RDWR_CREAT) as u64;
    let dup = guest.call(DUP, &[fd]) as u64;
    let data = guest.put(b"kept");
    assert_eq!(guest.call(1, &[fd, data, 4]), 4);
    let path = guest.put_str("/tmp/f");
    assert_eq!(guest.call(UNLINK, &[path]), 0);
    assert_eq!(guest.open("/tmp/f", O_RDONLY), err(libc::ENOENT));
    // Read and written through its descriptors, and still counted against /tmp.
    assert_eq!(read_back(&mut guest, fd, 8), b"kept");
    assert_eq!(guest.call(PWRITE, &[fd, data, 4, 4]), 4);
    assert_eq!(guest.kernel.fs.tmp_used(), 8);
    let stat = guest.buffer(144);
    assert_eq!(guest.call(5, &[fd, stat, 0]), 0, "fstat");
    assert_eq!(guest.get(stat + 48, 8), 8u64.to_le_bytes(), "st_size");
    assert_eq!(guest.get(stat + 16, 8), 0u64.to_le_bytes(), "st_nlink");
    // A new file at its old path is another file.
    let new = guest.open("/tmp/f", O_RDWR_CREAT) as u64;
    let other = guest.put(b"NEW!");
    assert_eq!(guest.call(1, &[new, other, 4]), 4);
    assert_eq!(read_back(&mut guest, fd, 16), b"keptkept");
    assert_eq!(read_back(&mut guest, new, 16), b"NEW!");
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    // Kept while a descriptor has it; its bytes leave the books with the last one.
    assert_eq!(guest.call(CLOSE, &[fd]), 0);
    assert_eq!(read_back(&mut guest, dup, 16), b"keptkept");
    assert_eq!(guest.kernel.fs.tmp_used(), 12);
    assert_eq!(guest.call(CLOSE, &[dup]), 0);
    assert_eq!(guest.kernel.fs.tmp_used(), 4);
    assert_eq!(guest.kernel.fs.orphans().count(), 0);
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
}

#[test]
fn a_file_replaced_by_a_rename_while_open_is_kept_for_its_descriptors() {
    let mut guest = Guest::one_shot(b"");
    let target = guest.open("/tmp/target", O_RDWR_CREAT) as u64;
    let old = guest.put(b"old!");
    assert_eq!(guest.call(1, &[target, old, 4]), 4);
    let source = guest.open("/tmp/source", O_RDWR_CREAT) as u64;
    let new = guest.put(b"new!");
    assert_eq!(guest.call(1, &[source, new, 4]), 4);
    let (from, to) = (guest.put_str("/tmp/source"), guest.put_str("/tmp/target"));
    assert_eq!(guest.call(RENAME, &[from, to]), 0);
    assert_eq!(read_back(&mut guest, target, 8), b"old!");
    assert_eq!(
        read_back(&mut guest, source, 8),
        b"new!",
        "the moved file's descriptor"
    );
    let reopened = guest.open("/tmp/target", O_RDONLY) as u64;
    assert_eq!(read_back(&mut guest, reopened, 8), b"new!");
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    assert_eq!(guest.call(CLOSE, &[target]), 0);
    assert_eq!(guest.kernel.fs.orphans().count(), 0);
    assert_eq!(guest.kernel.fs.tmp_used(), 4);
}

#[test]
fn a_directory_removed_while_open_holds_nothing_and_what_it_held_moves_with_nothing() {
    let mut guest = Guest::one_shot(b"");
    let dir = guest.put_str("/tmp/d");
    assert_eq!(guest.call(MKDIR, &[dir, 0o755]), 0);
    let file = guest.open("/tmp/d/f", O_RDWR_CREAT) as u64;
    let data = guest.put(b"kept");
    assert_eq!(guest.call(1, &[file, data, 4]), 4);
    let dirfd = guest.open("/tmp/d", O_RDONLY | libc::O_DIRECTORY) as u64;
    let inner = guest.put_str("/tmp/d/f");
    assert_eq!(guest.call(UNLINK, &[inner]), 0);
    assert_eq!(guest.call(RMDIR, &[dir]), 0);
    // Linux lists nothing of it and makes nothing in it.
    let buf = guest.buffer(4096);
    assert_eq!(guest.call(217, &[dirfd, buf, 4096]), err(libc::ENOENT));
    let name = guest.put_str("x");
    assert_eq!(
        guest.call(257, &[dirfd, name, O_RDWR_CREAT as u64, 0o644]),
        err(libc::ENOENT)
    );
    // As Linux, a program can still work in it, and finds nothing there.
    assert_eq!(guest.call(81, &[dirfd]), 0, "fchdir");
    let cwd = guest.buffer(64);
    assert_eq!(guest.call(79, &[cwd, 64]), err(libc::ENOENT), "getcwd");
    assert_eq!(guest.open("x", O_RDWR_CREAT), err(libc::ENOENT));
    // A new directory at the old path, moved under a long name, takes neither with it: a
    // descriptor's path grew with each such move before.
    assert_eq!(guest.call(MKDIR, &[dir, 0o755]), 0);
    let long = guest.put_str(&format!("/tmp/{}", "l".repeat(NAME_MAX)));
    assert_eq!(guest.call(RENAME, &[dir, long]), 0);
    assert!(guest.kernel.fds.paths().all(|path| !path.contains("lll")));
    assert!(!guest.kernel.cwd.contains("lll"));
    assert_eq!(guest.open("x", O_RDWR_CREAT), err(libc::ENOENT));
    assert_eq!(read_back(&mut guest, file, 8), b"kept");
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    assert_eq!(guest.kernel.fs.orphans().count(), 2);
    assert_eq!(guest.call(CLOSE, &[dirfd]), 0);
    assert_eq!(guest.call(CLOSE, &[file]), 0);
    assert_eq!(
        guest.kernel.fs.orphans().count(),
        1,
        "the working directory's"
    );
    let tmp = guest.put_str("/tmp");
    assert_eq!(guest.call(80, &[tmp]), 0, "chdir");
    assert_eq!(guest.kernel.fs.orphans().count(), 0);
    assert_eq!(guest.kernel.fs.tmp_used(), 0);
}

#[test]
fn a_file_a_child_removes_stays_open_in_its_waiting_parent() {
    let mut guest = Guest::one_shot(b"");
    let fd = guest.open("/tmp/f", O_RDWR_CREAT) as u64;
    let data = guest.put(b"kept");
    assert_eq!(guest.call(1, &[fd, data, 4]), 4);
    assert_eq!(guest.step(57, &[]), crate::kernel::Step::Fork);
    guest.kernel.begin_child(&guest.memory).unwrap();
    // The child removes it and ends with its copy of the descriptor open.
    let path = guest.put_str("/tmp/f");
    assert_eq!(guest.call(UNLINK, &[path]), 0);
    guest
        .kernel
        .end_child(Some(crate::kernel::fork::ChildEnd::Exited(0)));
    assert_eq!(read_back(&mut guest, fd, 8), b"kept");
    assert_eq!(guest.kernel.fs.orphans().count(), 1);
    assert_eq!(guest.call(CLOSE, &[fd]), 0);
    assert_eq!(guest.kernel.fs.orphans().count(), 0);
}

#[test]
fn open_paths_a_snapshot_could_not_hold_are_refused() {
    use super::{copy_of, snapshot_check};
    use crate::kernel::vfs::orphan_path;
    use lambda_core::Contract::Stdio;
    let mut guest = Guest::one_shot(b"");
    assert!(guest.open("/tmp/kept", O_RDWR_CREAT) >= 0);
    let path = guest.put_str("/tmp/kept");
    assert_eq!(guest.call(UNLINK, &[path]), 0);
    assert!(guest.open("/tmp/open", O_RDWR_CREAT) >= 0);
    snapshot_check(&guest, Stdio).unwrap();
    let inode = guest.kernel.fs.orphans().next().unwrap();
    let refused = |forge: &dyn Fn(&mut Guest), because: &str| {
        let mut copy = copy_of(&guest);
        forge(&mut copy);
        let why = snapshot_check(&copy, Stdio).expect_err(because);
        assert!(why.contains(because), "{why}");
    };
    // A removed file no descriptor has open any more, or one the filesystem does not keep.
    refused(
        &|g| g.kernel.fds.repath(&orphan_path(inode), "/tmp/kept"),
        "open files: it keeps removed inode",
    );
    refused(
        &|g| g.kernel.fds.repath("/tmp/open", &orphan_path(inode + 1)),
        "neither a path in normal form nor a removed entry the filesystem keeps",
    );
    // Paths not in the form a lookup gives, and a working directory likewise.
    refused(
        &|g| g.kernel.fds.repath("/tmp/open", "/tmp/../tmp/open"),
        "names \"/tmp/../tmp/open\", neither a path in normal form",
    );
    refused(
        &|g| {
            g.kernel
                .fds
                .repath(&orphan_path(inode), &format!("\0+{inode}"))
        },
        "neither a path in normal form",
    );
    refused(
        &|g| g.kernel.cwd = "tmp".into(),
        "or working directory names \"tmp\"",
    );
    refused(
        &|g| g.kernel.exe = "/".repeat(crate::kernel::vfs::PATH_MAX),
        "program's path",
    );
    // More unsupported syscall numbers counted apart than a guest can make.
    refused(
        &|g| {
            let apart = crate::kernel::MAX_UNSUPPORTED_KINDS as u64 + 1;
            g.kernel.stats.unsupported = (1000..1000 + apart).map(|n| (n, 1)).collect();
        },
        "unsupported syscall numbers",
    );
}

#[test]
fn o_tmpfile_makes_an_unnamed_file_in_tmp_that_goes_with_its_last_descriptor() {
    let mut guest = Guest::one_shot(b"");
    // Linux's checks: O_TMPFILE with O_CREAT, or without write access, is EINVAL; a file
    // is no directory; only /tmp makes one.
    for flags in [
        libc::O_TMPFILE | libc::O_RDONLY,
        libc::O_TMPFILE | libc::O_RDWR | libc::O_CREAT,
    ] {
        assert_eq!(guest.open("/tmp", flags), err(libc::EINVAL), "{flags:#o}");
    }
    let tmpfile = libc::O_TMPFILE | libc::O_RDWR;
    assert!(guest.open("/tmp/file", O_RDWR_CREAT) >= 0);
    assert_eq!(guest.open("/tmp/file", tmpfile), err(libc::ENOTDIR));
    assert_eq!(guest.open("/tmp/none", tmpfile), err(libc::ENOENT));
    assert_eq!(guest.open("/var/task", tmpfile), err(libc::EOPNOTSUPP));
    let used = guest.kernel.fs.tmp_used();

    let fd = guest.open("/tmp", tmpfile) as u64;
    let data = guest.put(b"unnamed");
    assert_eq!(guest.call(1, &[fd, data, 7]), 7);
    assert_eq!(read_back(&mut guest, fd, 16), b"unnamed");
    assert_eq!(guest.kernel.fs.tmp_used(), used + 7);
    // It has no name: /tmp lists only the file made above.
    let dir = guest.open("/tmp", O_RDONLY | libc::O_DIRECTORY) as u64;
    let buf = guest.buffer(4096);
    let n = guest.call(217, &[dir, buf, 4096]) as usize;
    let listing = guest.get(buf, n);
    assert_eq!(listing.windows(4).filter(|w| *w == b"file").count(), 1);
    assert_eq!(guest.kernel.fs.orphans().count(), 1);
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    assert_eq!(guest.call(CLOSE, &[fd]), 0);
    assert_eq!(guest.kernel.fs.orphans().count(), 0);
    assert_eq!(guest.kernel.fs.tmp_used(), used);
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
}

#[test]
fn the_working_directory_follows_renames_and_is_kept_once_removed() {
    let mut guest = Guest::one_shot(b"");
    let (work, done) = (guest.put_str("/tmp/work"), guest.put_str("/tmp/done"));
    assert_eq!(guest.call(MKDIR, &[work, 0o755]), 0);
    assert_eq!(guest.call(80, &[work]), 0, "chdir");
    let made = guest.open("a", O_RDWR_CREAT) as u64;
    assert_eq!(guest.call(CLOSE, &[made]), 0);
    // Renamed, it is where the process works: getcwd says so, relative paths go there.
    assert_eq!(guest.call(RENAME, &[work, done]), 0);
    let cwd = guest.buffer(64);
    assert_eq!(guest.call(79, &[cwd, 64]), 10, "getcwd");
    assert_eq!(guest.get(cwd, 10), b"/tmp/done\0");
    let found = guest.open("a", O_RDONLY) as u64;
    assert_eq!(guest.call(CLOSE, &[found]), 0);
    // Removed, it holds nothing, and a new directory at its path is another one.
    let a = guest.put_str("/tmp/done/a");
    assert_eq!(guest.call(UNLINK, &[a]), 0);
    assert_eq!(guest.call(RMDIR, &[done]), 0);
    assert_eq!(guest.call(79, &[cwd, 64]), err(libc::ENOENT), "getcwd");
    assert_eq!(guest.call(MKDIR, &[done, 0o755]), 0);
    assert_eq!(guest.open("b", O_RDWR_CREAT), err(libc::ENOENT));
    assert!(
        guest.open("/tmp/done/b", O_RDWR_CREAT) >= 0,
        "absolute paths still work"
    );
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    // Kept until the process works elsewhere.
    assert_eq!(guest.kernel.fs.orphans().count(), 1);
    let root = guest.put_str("/");
    assert_eq!(guest.call(80, &[root]), 0, "chdir");
    assert_eq!(guest.kernel.fs.orphans().count(), 0);
    // A forged working directory that is neither a path nor a kept entry is refused.
    let mut forged = super::copy_of(&guest);
    forged.kernel.cwd = crate::kernel::vfs::orphan_path(99);
    let why = super::snapshot_check(&forged, lambda_core::Contract::Stdio).unwrap_err();
    assert!(why.contains("working directory names"), "{why}");
}
