//! `execve` and `execveat`: the arguments read and bounded, the file looked up, the errors
//! Linux gives, and what the process keeps and loses once the run loop carries it out.

use super::{Guest, err};
use crate::kernel::exec::{MAX_ARG_BYTES, MAX_ARG_STRLEN};
use crate::kernel::{Step, vfs};

const EXECVE: u64 = 59;
const EXECVEAT: u64 = 322;
const MMAP: u64 = 9;
const CLONE: u64 = 56;
const FCNTL: u64 = 72;
const GETTID: u64 = 186;
const PTHREAD_FLAGS: u64 = 0x3d0f00;
const AT_EMPTY_PATH: u64 = 0x1000;

/// A NULL-terminated array of the strings `items`, in scratch memory.
fn strings(guest: &mut Guest, items: &[&[u8]]) -> u64 {
    let mut pointers = Vec::new();
    for item in items {
        let mut bytes = item.to_vec();
        bytes.push(0);
        pointers.push(guest.put(&bytes));
    }
    pointers.push(0);
    let words: Vec<u8> = pointers.iter().flat_map(|p| p.to_le_bytes()).collect();
    guest.put(&words)
}

#[test]
fn execve_hands_the_run_loop_the_file_arguments_and_environment() {
    let mut guest = Guest::one_shot(b"");
    let path = guest.put_str("bootstrap");
    let argv = strings(&mut guest, &[b"prog", b"a b", b"\xff"]);
    let envp = strings(&mut guest, &[b"A=1"]);
    assert_eq!(guest.step(EXECVE, &[path, argv, envp]), Step::Exec);
    let request = guest.kernel.take_exec().unwrap();
    assert_eq!(request.path, "/var/task/bootstrap", "relative to the cwd");
    assert_eq!(&*request.bytes, b"\x7fELF program");
    assert_eq!(request.argv, [&b"prog"[..], b"a b", b"\xff"]);
    assert_eq!(request.envp, [b"A=1"]);
    // No argv at all: Linux gives the program `[""]`.
    assert_eq!(guest.step(EXECVE, &[path, 0, 0]), Step::Exec);
    let request = guest.kernel.take_exec().unwrap();
    assert_eq!(request.argv, [b""]);
    assert!(request.envp.is_empty());
}

#[test]
fn execve_answers_linux_errors_before_anything_changes() {
    let mut guest = Guest::one_shot(b"");
    let argv = strings(&mut guest, &[b"x"]);
    for (path, errno) in [
        ("/var/task/missing", libc::ENOENT),
        ("/var/task", libc::EACCES),
        ("/", libc::EACCES),
        ("", libc::ENOENT),
    ] {
        let path = guest.put_str(path);
        assert_eq!(guest.call(EXECVE, &[path, argv, 0]), err(errno), "{path}");
    }
    // /tmp files are not executable.
    let fd = guest.open("/tmp/tool", libc::O_CREAT | libc::O_WRONLY);
    assert!(fd >= 0);
    let tool = guest.put_str("/tmp/tool");
    assert_eq!(guest.call(EXECVE, &[tool, argv, 0]), err(libc::EACCES));
    // Bad pointers.
    let path = guest.put_str("/var/task/bootstrap");
    assert_eq!(guest.call(EXECVE, &[8, argv, 0]), err(libc::EFAULT));
    assert_eq!(guest.call(EXECVE, &[path, 8, 0]), err(libc::EFAULT));
    let dangling = strings(&mut guest, &[]);
    let bad_entry = guest.put(&[8u64, 0].map(u64::to_le_bytes).concat());
    assert_eq!(
        guest.call(EXECVE, &[path, argv, bad_entry]),
        err(libc::EFAULT)
    );
    assert_eq!(guest.step(EXECVE, &[path, dangling, 0]), Step::Exec);
    guest.kernel.take_exec();
    // A path longer than PATH_MAX.
    let long = guest.put_str(&format!("/{}", "a".repeat(vfs::PATH_MAX)));
    assert_eq!(
        guest.call(EXECVE, &[long, argv, 0]),
        err(libc::ENAMETOOLONG)
    );
    // One string longer than MAX_ARG_STRLEN, or all of them past MAX_ARG_BYTES (the same
    // string many times), in memory of their own.
    let long = guest.call(MMAP, &[0, 1 << 20, 3, 0x22, u64::MAX, 0]) as u64;
    guest
        .memory
        .write(long, &vec![b'x'; MAX_ARG_STRLEN as usize])
        .unwrap();
    let huge = long + 1;
    let too_long = long;
    let array = |guest: &mut Guest, pointer: u64, count: usize| {
        let mut words: Vec<u8> = std::iter::repeat_n(pointer, count)
            .flat_map(u64::to_le_bytes)
            .collect();
        words.extend(0u64.to_le_bytes());
        guest.put(&words)
    };
    let argv_huge = array(&mut guest, too_long, 1);
    assert_eq!(guest.call(EXECVE, &[path, argv_huge, 0]), err(libc::E2BIG));
    let argv_fits = array(&mut guest, huge, 1);
    assert_eq!(guest.step(EXECVE, &[path, argv_fits, 0]), Step::Exec);
    assert_eq!(
        guest.kernel.take_exec().unwrap().argv[0].len(),
        MAX_ARG_STRLEN as usize - 1
    );
    let count = (MAX_ARG_BYTES / MAX_ARG_STRLEN) as usize + 1;
    let many = array(&mut guest, huge, count);
    assert_eq!(guest.call(EXECVE, &[path, argv, many]), err(libc::E2BIG));
    let fewer = array(&mut guest, huge, count - 1);
    assert_eq!(guest.step(EXECVE, &[path, argv, fewer]), Step::Exec);
    guest.kernel.take_exec();
    assert!(
        guest.kernel.take_exec().is_none(),
        "a failed call asks nothing"
    );
}

#[test]
fn execveat_runs_an_open_file_with_at_empty_path() {
    let mut guest = Guest::one_shot(b"");
    let fd = guest.open("/var/task/bootstrap", libc::O_RDONLY) as u64;
    let empty = guest.put_str("");
    let argv = strings(&mut guest, &[b"x"]);
    assert_eq!(
        guest.call(EXECVEAT, &[fd, empty, argv, 0, 0]),
        err(libc::ENOENT),
        "an empty path needs AT_EMPTY_PATH"
    );
    assert_eq!(
        guest.step(EXECVEAT, &[fd, empty, argv, 0, AT_EMPTY_PATH]),
        Step::Exec
    );
    assert_eq!(
        guest.kernel.take_exec().unwrap().path,
        "/var/task/bootstrap"
    );
    assert_eq!(
        guest.call(EXECVEAT, &[fd, empty, argv, 0, 0x4]),
        err(libc::EINVAL),
        "unknown flags"
    );
}

#[test]
fn finishing_an_exec_keeps_what_linux_keeps() {
    let mut guest = Guest::one_shot(b"");
    let cloexec = guest.open("/var/task/data.txt", libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    let kept = guest.open("/var/task/data.txt", libc::O_RDONLY) as u64;
    guest.ignore_signal(libc::SIGUSR2 as u64);
    let handler = guest.put(
        &[0x1234u64, 0x0400_0000, 0x5678, 0]
            .map(u64::to_le_bytes)
            .concat(),
    );
    assert_eq!(guest.call(13, &[libc::SIGUSR1 as u64, handler, 0, 8]), 0);
    // A second thread makes the call.
    let tid_word = guest.buffer(4);
    let Step::Clone(thread) = guest.step(
        CLONE,
        &[PTHREAD_FLAGS, 0x7000_0000, tid_word, tid_word, 0x6000],
    ) else {
        panic!("clone");
    };
    guest.as_thread(thread.tid);
    assert_eq!(guest.call(GETTID, &[]), i64::from(thread.tid));
    assert_eq!(guest.kernel.finish_exec("/var/task/next"), 1);
    assert_eq!(guest.kernel.thread_count(), 1);
    assert_eq!(
        guest.call(GETTID, &[]),
        1,
        "the caller is the first thread now"
    );
    assert_eq!(guest.call(FCNTL, &[cloexec, 1, 0]), err(libc::EBADF));
    assert_eq!(guest.call(FCNTL, &[kept, 1, 0]), 0);
    let old = guest.buffer(32);
    assert_eq!(guest.call(13, &[libc::SIGUSR1 as u64, 0, old, 8]), 0);
    assert_eq!(
        guest.get(old, 8),
        0u64.to_le_bytes(),
        "handler reset to SIG_DFL"
    );
    assert_eq!(guest.call(13, &[libc::SIGUSR2 as u64, 0, old, 8]), 0);
    assert_eq!(guest.get(old, 8), 1u64.to_le_bytes(), "SIG_IGN stays");
    let exe = guest.put_str("/proc/self/exe");
    let out = guest.buffer(64);
    assert_eq!(guest.call(89, &[exe, out, 64]), 14);
    assert_eq!(guest.get(out, 14), b"/var/task/next");
}

#[test]
fn close_range_closes_or_marks_a_range_of_descriptors() {
    const CLOSE_RANGE: u64 = 436;
    let mut guest = Guest::one_shot(b"");
    let fds: Vec<u64> = (0..4)
        .map(|_| guest.open("/var/task/data.txt", libc::O_RDONLY) as u64)
        .collect();
    assert_eq!(fds, [3, 4, 5, 6]);
    assert_eq!(guest.call(CLOSE_RANGE, &[5, u64::from(u32::MAX), 4]), 0);
    assert_eq!(guest.call(FCNTL, &[5, 1, 0]), 1, "FD_CLOEXEC set");
    assert_eq!(guest.call(FCNTL, &[4, 1, 0]), 0);
    assert_eq!(guest.call(CLOSE_RANGE, &[4, 5, 0]), 0);
    assert_eq!(guest.call(FCNTL, &[4, 1, 0]), err(libc::EBADF));
    assert_eq!(guest.call(FCNTL, &[5, 1, 0]), err(libc::EBADF));
    assert_eq!(
        guest.call(FCNTL, &[6, 1, 0]),
        1,
        "past the range: open, marked before"
    );
    assert_eq!(guest.call(CLOSE_RANGE, &[6, 5, 0]), err(libc::EINVAL));
    assert_eq!(guest.call(CLOSE_RANGE, &[0, 1, 8]), err(libc::EINVAL));
}
