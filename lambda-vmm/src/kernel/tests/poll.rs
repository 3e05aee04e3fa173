//! Readiness: eventfd, epoll and poll, with their flags and bounds.

use super::{Guest, err};
use crate::kernel::Step;
use crate::kernel::poll::MAX_EPOLL_WATCHES;

#[test]
fn epoll_create_flags_and_sizes_are_checked() {
    let mut guest = Guest::one_shot(b"");
    assert!(guest.call(291, &[libc::EPOLL_CLOEXEC as u64]) >= 0);
    assert_eq!(guest.call(291, &[1]), err(libc::EINVAL));
    assert_eq!(guest.call(213, &[0]), err(libc::EINVAL));
    assert_eq!(guest.call(213, &[u64::MAX]), err(libc::EINVAL), "size -1");
    assert!(guest.call(213, &[1]) >= 0);
}

#[test]
fn eventfds_become_ready_and_epoll_reports_them() {
    let mut guest = Guest::one_shot(b"");
    let event = guest.call(290, &[0, libc::EFD_NONBLOCK as u64]) as u64;
    let epoll = guest.call(291, &[0]) as u64;
    let interest = guest.put(&[&1u32.to_le_bytes()[..], &42u64.to_le_bytes()].concat());
    assert_eq!(guest.call(233, &[epoll, 1, event, interest]), 0);
    let events = guest.buffer(12 * 4);
    assert_eq!(
        guest.call(232, &[epoll, events, 4, 0]),
        0,
        "nothing ready, no wait"
    );
    let buf = guest.buffer(8);
    assert_eq!(guest.call(0, &[event, buf, 8]), err(libc::EAGAIN));
    let one = guest.put(&1u64.to_le_bytes());
    assert_eq!(guest.call(1, &[event, one, 8]), 8);
    assert_eq!(guest.call(232, &[epoll, events, 4, 0]), 1);
    assert_eq!(&guest.get(events + 4, 8), &42u64.to_le_bytes());
    assert_eq!(guest.call(232, &[epoll, events, 0, 0]), err(libc::EINVAL));
    assert_eq!(
        guest.call(232, &[epoll, events, u64::MAX, 0]),
        err(libc::EINVAL)
    );
    // A wait with nothing ready and a timeout blocks until then.
    assert_eq!(guest.call(0, &[event, buf, 8]), 8);
    assert!(matches!(
        guest.step(232, &[epoll, events, 4, 50]),
        Step::Block(Some(_))
    ));
}

#[test]
fn epoll_registrations_are_bounded_per_environment() {
    let mut guest = Guest::one_shot(b"");
    let interest = guest.put(&[&1u32.to_le_bytes()[..], &0u64.to_le_bytes()].concat());
    let targets: Vec<u64> = (0..64).map(|_| guest.call(290, &[0, 0]) as u64).collect();
    let mut added = 0;
    let refused = 'outer: loop {
        let epoll = guest.call(291, &[0]);
        if epoll < 0 {
            break epoll;
        }
        for &target in &targets {
            let answer = guest.call(233, &[epoll as u64, 1, target, interest]);
            if answer < 0 {
                break 'outer answer;
            }
            added += 1;
        }
    };
    assert_eq!(refused, err(libc::ENOSPC));
    assert_eq!(added, MAX_EPOLL_WATCHES);
    // As many as a program can hold pass a snapshot file's check; one more does not.
    let check = |guest: &Guest| super::snapshot_check(guest, lambda_core::Contract::Stdio);
    check(&guest).unwrap();
    let mut forged = super::copy_of(&guest);
    let epoll = forged.call(291, &[0]) as u64;
    if let crate::kernel::fd::Object::Epoll(epoll) =
        &mut forged.kernel.fds.get_mut(epoll).unwrap().object
    {
        epoll.interests.insert(targets[0], Default::default());
    }
    let why = check(&forged).unwrap_err();
    assert!(
        why.contains("epoll: epoll instances hold 8193 registrations, more than 8192"),
        "{why}"
    );
}

#[test]
fn a_snapshot_files_epoll_instances_watch_only_open_descriptors() {
    let mut guest = Guest::one_shot(b"");
    let check = |guest: &Guest| super::snapshot_check(guest, lambda_core::Contract::Stdio);
    let epoll = guest.call(291, &[0]) as u64;
    let target = guest.call(290, &[0, 0]) as u64;
    let interest = guest.put(&[&1u32.to_le_bytes()[..], &0u64.to_le_bytes()].concat());
    assert_eq!(guest.call(233, &[epoll, 1, target, interest]), 0);
    // A second descriptor of the instance shares its registrations.
    let second = guest.call(32, &[epoll]) as u64;
    check(&guest).unwrap();
    // Closing the watched descriptor takes its registration out.
    assert_eq!(guest.call(3, &[target]), 0);
    check(&guest).unwrap();
    // A file that kept it would have the instance watch a closed descriptor.
    if let crate::kernel::fd::Object::Epoll(epoll) =
        &mut guest.kernel.fds.get_mut(second).unwrap().object
    {
        epoll.interests.insert(target, Default::default());
    }
    let why = check(&guest).unwrap_err();
    assert!(
        why.contains(&format!(
            "epoll: an epoll instance watches descriptor {target}, which is closed"
        )),
        "{why}"
    );
}

#[test]
fn poll_checks_its_count_and_reports_bad_descriptors() {
    let mut guest = Guest::one_shot(b"");
    let fds = guest.put(
        &[
            &1000i32.to_le_bytes()[..],
            &1i16.to_le_bytes(),
            &0i16.to_le_bytes(),
        ]
        .concat(),
    );
    assert_eq!(guest.call(7, &[fds, 1, 0]), 1);
    assert_eq!(&guest.get(fds + 6, 2), &0x20i16.to_le_bytes(), "POLLNVAL");
    assert_eq!(guest.call(7, &[fds, 100_000, 0]), err(libc::EINVAL));
    assert_eq!(guest.call(7, &[0x10, 1, 0]), err(libc::EFAULT));
}

#[test]
fn epoll_takes_stdio_as_the_pipes_fstat_says_they_are() {
    // Node's libuv adds standard input to its epoll set when fstat says FIFO.
    let mut guest = Guest::one_shot(b"the event");
    guest.kernel.hold_stdin();
    let epoll = guest.call(291, &[0]) as u64;
    let interest = |guest: &mut Guest, events: u32, data: u64| {
        guest.put(&[&events.to_le_bytes()[..], &data.to_le_bytes()].concat())
    };
    let (epollin, epollout) = (libc::EPOLLIN as u32, libc::EPOLLOUT as u32);
    let stdin = interest(&mut guest, epollin | epollout, 0);
    let stdout = interest(&mut guest, epollin | epollout, 1);
    assert_eq!(guest.call(233, &[epoll, 1, 0, stdin]), 0, "stdin");
    assert_eq!(guest.call(233, &[epoll, 1, 1, stdout]), 0, "stdout");
    let events = guest.buffer(12 * 4);
    // stdout is writable and never readable; stdin waits for its held event.
    assert_eq!(guest.call(232, &[epoll, events, 4, 0]), 1);
    assert_eq!(
        u32::from_le_bytes(guest.get(events, 4).try_into().unwrap()),
        epollout
    );
    assert_eq!(&guest.get(events + 4, 8), &1u64.to_le_bytes());
    guest.kernel.deliver_stdin(b"the event".to_vec());
    assert_eq!(guest.call(232, &[epoll, events, 4, 0]), 2);
    // A regular file is still refused, as Linux refuses it.
    let file = guest.open("/var/task/data.txt", libc::O_RDONLY) as u64;
    let any = interest(&mut guest, epollin, 2);
    assert_eq!(guest.call(233, &[epoll, 1, file, any]), err(libc::EPERM));
}
