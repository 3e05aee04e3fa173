//! The loopback network: the Runtime API, closed everywhere else, and its bounds.

use lambda_core::Invocation;
use lambda_core::runtime_api::{ApiEvent, MAX_CONNECTIONS};

use super::{Guest, err};

const NEXT: &[u8] = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";

fn sockaddr(guest: &mut Guest, ip: [u8; 4], port: u16) -> u64 {
    let mut bytes = vec![2, 0];
    bytes.extend_from_slice(&port.to_be_bytes());
    bytes.extend_from_slice(&ip);
    bytes.extend_from_slice(&[0; 8]);
    guest.put(&bytes)
}

/// A socket connected to the Runtime API.
fn connected(guest: &mut Guest) -> u64 {
    let fd = guest.call(41, &[2, 1, 0]) as u64;
    let api = sockaddr(guest, [127, 0, 0, 1], 9001);
    assert_eq!(guest.call(42, &[fd, api, 16]), 0);
    fd
}

#[test]
fn only_the_runtime_api_answers() {
    let mut guest = Guest::runtime();
    let fd = guest.call(41, &[2, 1, 0]) as u64;
    let closed = sockaddr(&mut guest, [127, 0, 0, 1], 80);
    let far = sockaddr(&mut guest, [10, 0, 0, 1], 80);
    assert_eq!(guest.call(42, &[fd, closed, 16]), err(libc::ECONNREFUSED));
    assert_eq!(guest.call(42, &[fd, far, 16]), err(libc::ENETUNREACH));
    assert_eq!(guest.call(42, &[fd, far, 1]), err(libc::EINVAL));
    assert_eq!(
        guest.call(42, &[fd, far, 4]),
        err(libc::EINVAL),
        "a truncated address"
    );
    assert_eq!(guest.call(41, &[1, 1, 0]), err(libc::EAFNOSUPPORT));
    assert_eq!(guest.call(41, &[2, 2, 0]), err(libc::EPROTONOSUPPORT));
}

#[test]
fn a_runtime_reads_its_event_with_peek_and_flags_checked() {
    let mut guest = Guest::runtime();
    let fd = connected(&mut guest);
    let next = guest.put(NEXT);
    assert_eq!(
        guest.call(1, &[fd, next, NEXT.len() as u64]),
        NEXT.len() as i64
    );
    let api = guest.kernel.api_mut().unwrap();
    assert_eq!(api.next_event(), Some(ApiEvent::InitDone));
    api.deliver(Invocation::new(b"{\"e\":1}".to_vec()), 1)
        .unwrap();
    let buf = guest.buffer(4096);
    // MSG_PEEK through recvmsg leaves the bytes; unknown flags are refused.
    let iov = guest.put(&[buf.to_le_bytes(), 4096u64.to_le_bytes()].concat());
    let mut msg = vec![0u8; 56];
    msg[16..24].copy_from_slice(&iov.to_le_bytes());
    msg[24..32].copy_from_slice(&1u64.to_le_bytes());
    let msg = guest.put(&msg);
    let peeked = guest.call(47, &[fd, msg, libc::MSG_PEEK as u64]);
    assert!(peeked > 0);
    assert_eq!(
        guest.call(47, &[fd, msg, 0x8000_0000]),
        err(libc::EOPNOTSUPP)
    );
    let read = guest.call(45, &[fd, buf, 4096, 0, 0, 0]);
    assert_eq!(read, peeked, "the peek left everything in place");
    assert!(
        String::from_utf8(guest.get(buf, read as usize))
            .unwrap()
            .ends_with("{\"e\":1}")
    );
    // SHUT_RD: reads see end of file.
    assert_eq!(guest.call(48, &[fd, libc::SHUT_RD as u64]), 0);
    assert_eq!(guest.call(0, &[fd, buf, 16]), 0);
    assert_eq!(guest.call(48, &[fd, 7]), err(libc::EINVAL));
}

#[test]
fn connections_to_the_runtime_api_are_bounded() {
    let mut guest = Guest::runtime();
    for _ in 0..MAX_CONNECTIONS {
        connected(&mut guest);
    }
    let fd = guest.call(41, &[2, 1, 0]) as u64;
    let api = sockaddr(&mut guest, [127, 0, 0, 1], 9001);
    assert_eq!(guest.call(42, &[fd, api, 16]), err(libc::ECONNREFUSED));
    // Closing one makes room.
    assert_eq!(guest.call(3, &[3]), 0);
    assert_eq!(guest.call(42, &[fd, api, 16]), 0);
}

/// What `Kernel::check` says of the guest's kernel as a snapshot file of a Runtime API
/// function would bring it back.
fn check(guest: &Guest) -> Result<(), String> {
    super::snapshot_check(guest, lambda_core::Contract::RuntimeApi)
}

/// The Runtime API connection socket `fd` holds.
fn connection_of(guest: &mut Guest, fd: u64) -> lambda_core::runtime_api::ConnectionId {
    match &guest.kernel.fds.get_mut(fd).unwrap().object {
        crate::kernel::fd::Object::Socket(socket) => socket.connection.unwrap(),
        other => panic!("not a socket: {other:?}"),
    }
}

#[test]
fn sockets_and_runtime_api_connections_must_name_each_other_in_a_snapshot() {
    let mut guest = Guest::runtime();
    // Init done: the runtime asks for its first event on one connection, as a snapshot
    // finds it; a second is connected, and shared by a dup.
    let asking = connected(&mut guest);
    let next = guest.put(NEXT);
    assert_eq!(
        guest.call(1, &[asking, next, NEXT.len() as u64]),
        NEXT.len() as i64
    );
    let api = guest.kernel.api_mut().unwrap();
    assert_eq!(api.next_event(), Some(ApiEvent::InitDone));
    let idle = connected(&mut guest);
    let shared = guest.call(32, &[idle]) as u64;
    check(&guest).unwrap();
    // A socket closed: its connection goes with it, and the kernel still agrees.
    let closed = connected(&mut guest);
    assert_eq!(guest.call(3, &[closed]), 0);
    check(&guest).unwrap();

    let refused = |forge: &dyn Fn(&mut Guest), because: &str| {
        let mut forged = Guest::runtime();
        forged.kernel = guest.kernel.clone();
        forge(&mut forged);
        let why = check(&forged).expect_err(because);
        assert!(why.contains(because), "{why}");
    };
    // A connection no socket names: the program could never read or close it.
    refused(
        &|forged| {
            forged.kernel.api_mut().unwrap().connect().unwrap();
        },
        "sockets: the Runtime API has 3 connections where sockets name 2",
    );
    // A socket on a connection the API does not have.
    refused(
        &|forged| {
            let id = connection_of(forged, idle);
            forged.kernel.api_mut().unwrap().disconnect(id);
        },
        "which the Runtime API does not have",
    );
    // Two sockets on one connection (the dup shares one open description, so is not one).
    refused(
        &|forged| {
            let id = connection_of(forged, asking);
            let socket = forged.call(41, &[2, 1, 0]) as u64;
            if let crate::kernel::fd::Object::Socket(socket) =
                &mut forged.kernel.fds.get_mut(socket).unwrap().object
            {
                socket.connection = Some(id);
            }
        },
        "two sockets name connection",
    );
    assert_eq!(
        connection_of(&mut guest, shared),
        connection_of(&mut guest, idle)
    );
}
