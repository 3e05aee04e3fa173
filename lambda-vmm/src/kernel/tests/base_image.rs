//! A base image under the in-memory filesystem: its files read, listed, stat'ed and mapped;
//! nothing of it writable; `/var/task` and `/tmp` still the environment's own.

use std::path::PathBuf;

use super::{Guest, err};
use crate::base_image::BaseImage;

/// A small image: `/lib/libx.so` (two pages and a bit), `/bin/tool` (executable) and a
/// `/var/task` of its own that must stay hidden.
fn image(test: &str) -> (PathBuf, BaseImage) {
    let dir = std::env::temp_dir().join(format!("kernel-image-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("var/task")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let library: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("lib/libx.so"), &library).unwrap();
    std::fs::write(dir.join("bin/tool"), b"#!/bin/sh\n").unwrap();
    std::fs::write(dir.join("var/task/shadow"), b"not visible").unwrap();
    std::fs::create_dir_all(dir.join("opt")).unwrap();
    std::fs::write(dir.join("opt/shadow"), b"not visible").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(dir.join("bin/tool"))
        .status()
        .unwrap();
    std::os::unix::fs::symlink("lib", dir.join("lib64")).unwrap();
    let image = BaseImage::open(&dir).unwrap();
    (dir, image)
}

#[test]
fn image_files_are_read_listed_and_never_written() {
    let (dir, image) = image("files");
    let mut guest = Guest::with_base_image(image);
    let fd = guest.open("/lib64/libx.so", libc::O_RDONLY) as u64;
    let buf = guest.buffer(16);
    assert_eq!(guest.call(17, &[fd, buf, 4, 251]), 4, "pread64");
    assert_eq!(guest.get(buf, 4), [0, 1, 2, 3]);
    // fstat: a regular file of 9000 bytes, mode 0644; the tool is 0755.
    let stat = guest.buffer(144);
    assert_eq!(guest.call(5, &[fd, stat]), 0);
    let bytes = guest.get(stat, 144);
    assert_eq!(
        u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
        0o100_644
    );
    assert_eq!(u64::from_le_bytes(bytes[48..56].try_into().unwrap()), 9000);
    let tool = guest.put(b"/bin/tool\0");
    assert_eq!(guest.call(4, &[tool, stat]), 0, "stat");
    let bytes = guest.get(stat, 144);
    assert_eq!(
        u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
        0o100_755
    );
    // Nothing of the image can be written, created or removed.
    assert_eq!(guest.open("/lib/libx.so", libc::O_RDWR), err(libc::EROFS));
    assert_eq!(
        guest.open("/lib/new", libc::O_RDWR | libc::O_CREAT),
        err(libc::EROFS)
    );
    let lib = guest.put(b"/lib/libx.so\0");
    assert_eq!(guest.call(87, &[lib]), err(libc::EROFS), "unlink");
    let newdir = guest.put(b"/lib/dir\0");
    assert_eq!(guest.call(83, &[newdir, 0o755]), err(libc::EROFS), "mkdir");
    // /var/task and /tmp are the environment's: the image's copies are hidden.
    assert_eq!(
        guest.open("/var/task/shadow", libc::O_RDONLY),
        err(libc::ENOENT)
    );
    assert!(guest.open("/var/task/bootstrap", libc::O_RDONLY) >= 0);
    // /opt is the layers' (the harness's one file), never the image's.
    assert_eq!(guest.open("/opt/shadow", libc::O_RDONLY), err(libc::ENOENT));
    assert!(guest.open("/opt/bin/layer-tool", libc::O_RDONLY) >= 0);
    assert_eq!(
        guest.open("/opt/bin/layer-tool", libc::O_RDWR),
        err(libc::EROFS)
    );
    assert_eq!(
        guest.open("/opt/new", libc::O_RDWR | libc::O_CREAT),
        err(libc::EROFS)
    );
    assert!(guest.open("/tmp/mine", libc::O_RDWR | libc::O_CREAT) >= 0);
    // `/` lists the image's entries and the environment's own.
    let root = guest.open("/", libc::O_RDONLY | libc::O_DIRECTORY) as u64;
    let dents = guest.buffer(4096);
    let n = guest.call(217, &[root, dents, 4096]);
    assert!(n > 0);
    let listing = guest.get(dents, n as usize);
    for name in ["lib", "lib64", "bin", "tmp", "var", "opt"] {
        let needle = format!("{name}\0");
        assert!(
            listing
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{name} listed"
        );
    }
    // The image's links read as stored; its files are not links.
    let link = guest.put(b"/lib64\0");
    let target = guest.buffer(64);
    assert_eq!(guest.call(89, &[link, target, 64]), 3, "readlink");
    assert_eq!(guest.get(target, 3), b"lib");
    assert_eq!(guest.call(89, &[lib, target, 64]), err(libc::EINVAL));
    // `..` from the image's root stays at its root.
    assert!(guest.open("/../../lib/libx.so", libc::O_RDONLY) >= 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A base image's file mapped without access is mapped, and reads the file once `mprotect`
/// opens it (it failed with `ENOMEM` before 2026-12-08).
#[test]
fn an_image_file_mapped_without_access_reads_the_file_once_opened() {
    let (dir, image) = image("mmap-none");
    let mut guest = Guest::with_base_image(image);
    let fd = guest.open("/lib/libx.so", libc::O_RDONLY) as u64;
    let at = guest.call(
        9,
        &[
            0,
            12288,
            libc::PROT_NONE as u64,
            libc::MAP_PRIVATE as u64,
            fd,
            0,
        ],
    );
    assert!(at > 0, "mmap: {at}");
    let at = at as u64;
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    assert_eq!(guest.call(10, &[at, 12288, libc::PROT_READ as u64]), 0);
    let expected: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(guest.get(at, 9000), expected);
    super::snapshot_check(&guest, lambda_core::Contract::Stdio).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_files_map_privately_and_read_only_shared() {
    let (dir, image) = image("mmap");
    let mut guest = Guest::with_base_image(image);
    let fd = guest.open("/lib/libx.so", libc::O_RDONLY) as u64;
    let private = (libc::MAP_PRIVATE) as u64;
    let shared = (libc::MAP_SHARED) as u64;
    let (read, read_write) = (
        libc::PROT_READ as u64,
        (libc::PROT_READ | libc::PROT_WRITE) as u64,
    );
    // The whole file, private and writable: its bytes, then zeros to the page's end.
    let at = guest.call(9, &[0, 12288, read_write, private, fd, 0]);
    assert!(at > 0, "mmap: {at}");
    let at = at as u64;
    let mapped = guest.get(at, 12288);
    let expected: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(&mapped[..9000], &expected[..]);
    assert!(mapped[9000..].iter().all(|&b| b == 0));
    // Writes stay in the mapping: a second mapping sees the file as it was.
    guest.memory.write(at, b"changed").unwrap();
    let again = guest.call(9, &[0, 4096, read, private, fd, 4096]) as u64;
    assert_eq!(guest.get(again, 4), expected[4096..4100]);
    assert_ne!(guest.get(at, 7), expected[..7]);
    // Shared read-only is allowed; shared writable of a read-only file is not.
    assert!(guest.call(9, &[0, 4096, read, shared, fd, 0]) > 0);
    assert_eq!(
        guest.call(9, &[0, 4096, read_write, shared, fd, 0]),
        err(libc::EACCES)
    );
    // Offsets must be page-aligned; directories and pipes cannot be mapped.
    assert_eq!(
        guest.call(9, &[0, 4096, read, private, fd, 100]),
        err(libc::EINVAL)
    );
    let lib = guest.open("/lib", libc::O_RDONLY | libc::O_DIRECTORY) as u64;
    assert_eq!(
        guest.call(9, &[0, 4096, read, private, lib, 0]),
        err(libc::ENODEV)
    );
    assert_eq!(
        guest.call(9, &[0, 4096, read, private, 1, 0]),
        err(libc::EACCES)
    );
    assert_eq!(
        guest.call(9, &[0, 4096, read, private, 99, 0]),
        err(libc::EBADF)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
