//! `MicroVmBackend::new` limits glibc's malloc to one arena: threads that start allocating
//! afterwards share the arenas that exist and make none of their own, whose heaps would grow
//! by `mprotect` calls that every VM in the process hears of. Alone in its own test binary,
//! so the arenas counted are only this test's and the harness's.

mod kvm_gate;

use std::io::{Read, Seek};
use std::os::fd::FromRawFd;

/// How many arenas glibc's malloc has made in this process (the `<heap nr=...>` entries of
/// `malloc_info`).
fn arenas() -> usize {
    // SAFETY: `tmpfile` returns a new stream (or null, checked); `malloc_info` writes its
    // report to it; the stream is flushed, its descriptor duplicated into a `File` we own,
    // and the stream closed once, after which it is not used.
    let report = unsafe {
        let stream = libc::tmpfile();
        assert!(
            !stream.is_null(),
            "tmpfile: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(libc::malloc_info(0, stream), 0, "malloc_info");
        assert_eq!(libc::fflush(stream), 0, "fflush");
        let fd = libc::dup(libc::fileno(stream));
        assert!(fd >= 0, "dup: {}", std::io::Error::last_os_error());
        libc::fclose(stream);
        let mut file = std::fs::File::from_raw_fd(fd);
        file.rewind().expect("rewind the report");
        let mut report = String::new();
        file.read_to_string(&mut report).expect("read the report");
        report
    };
    report.matches("<heap nr=").count()
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn threads_that_allocate_after_the_backend_is_made_make_no_arena() {
    let _backend = kvm_gate::kvm_backend();
    let before = arenas();
    assert!(before >= 1, "malloc_info names the main arena");
    // Four threads allocating at the same time: with glibc's default limit (8 per core)
    // each would get an arena of its own.
    let threads = 4;
    let all_allocated = std::sync::Barrier::new(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let blocks: Vec<Vec<u8>> = (0..256u32).map(|i| vec![i as u8; 4096]).collect();
                all_allocated.wait();
                assert_eq!(blocks.len(), 256);
            });
        }
    });
    assert_eq!(
        arenas(),
        before,
        "threads that started allocating after MicroVmBackend::new made arenas of their own"
    );
}
