//! The loopback network inside the micro-VM. There is no network device: a TCP socket that
//! connects to the Runtime API address is joined to the environment's [`RuntimeApi`], and
//! every other destination fails as a closed network would.
//!
//! [`RuntimeApi`]: lambda_core::runtime_api::RuntimeApi

use super::abi;
use super::fd::{Descriptor, Object, Socket};
use super::files::read_iovecs;
use super::{Errno, Kernel, SysResult};
use crate::mm::GuestMemory;

/// The loopback address the Runtime API listens on.
pub const RUNTIME_API_ADDR: [u8; 4] = [127, 0, 0, 1];
/// Its port.
pub const RUNTIME_API_PORT: u16 = 9001;
/// `AWS_LAMBDA_RUNTIME_API` as the guest sees it.
pub const RUNTIME_API_ENDPOINT: &str = "127.0.0.1:9001";

const SOCK_STREAM: u64 = 1;
const SOCK_TYPE_MASK: u64 = 0xf;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2_000_000;
const MSG_PEEK: u64 = 0x2;
const MSG_DONTWAIT: u64 = 0x40;
const MSG_NOSIGNAL: u64 = 0x4000;
const AF_INET: u16 = 2;
const AF_UNIX: u16 = 1;
const SHUT_RD: u64 = 0;
const SHUT_WR: u64 = 1;
const SHUT_RDWR: u64 = 2;
const SOL_SOCKET: u64 = 1;
const SO_TYPE: u64 = 3;
const SO_ERROR: u64 = 4;

fn errno(code: i32) -> Errno {
    Errno(code)
}

fn sockaddr_in(addr: [u8; 4], port: u16) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..2].copy_from_slice(&AF_INET.to_le_bytes());
    bytes[2..4].copy_from_slice(&port.to_be_bytes());
    bytes[4..8].copy_from_slice(&addr);
    bytes
}

/// The flags of a send (`MSG_DONTWAIT`, `MSG_NOSIGNAL`: no `SIGPIPE` with an `EPIPE`)
/// or a receive (also `MSG_PEEK`): whether not to wait, and whether to peek. Any other flag
/// answers `EOPNOTSUPP`.
fn message_flags(flags: u64, receive: bool) -> Result<(bool, bool), Errno> {
    let allowed = MSG_DONTWAIT | MSG_NOSIGNAL | if receive { MSG_PEEK } else { 0 };
    if flags & !allowed != 0 {
        return Err(errno(libc::EOPNOTSUPP));
    }
    Ok((flags & MSG_DONTWAIT != 0, flags & MSG_PEEK != 0))
}

impl Kernel {
    /// Checks the sockets of a kernel read from a snapshot file against its Runtime API: each
    /// connection a socket's open description names is one the API has, named by no other
    /// open description, and each connection the API has is named (the kernel makes one at a
    /// socket's `connect` and drops it when the last descriptor of that socket closes). A
    /// connection no socket names would take an invocation's event, or hold one of the
    /// API's connections, with no program able to read or close it; one the API lacks, or
    /// two sockets on one, would answer the program's requests from nowhere. Says what is
    /// wrong.
    pub(super) fn check_sockets(&self) -> Result<(), String> {
        let mut named = std::collections::BTreeSet::new();
        for descriptor in self.fds.descriptions() {
            let Object::Socket(Socket {
                connection: Some(id),
                ..
            }) = &descriptor.object
            else {
                continue;
            };
            if !self.api.as_ref().is_some_and(|api| api.is_connected(*id)) {
                return Err(format!(
                    "a socket names {id}, which the Runtime API does not have"
                ));
            }
            if !named.insert(*id) {
                return Err(format!("two sockets name {id}"));
            }
        }
        let held = self.api.as_ref().map_or(0, |api| api.connection_count());
        if held != named.len() {
            return Err(format!(
                "the Runtime API has {held} connections where sockets name {}",
                named.len()
            ));
        }
        Ok(())
    }

    fn socket_ref(&self, fd: u64) -> Result<&Socket, Errno> {
        match &self.fds.get(fd)?.object {
            Object::Socket(socket) => Ok(socket),
            _ => Err(errno(libc::ENOTSOCK)),
        }
    }

    fn socket_mut(&mut self, fd: u64) -> Result<&mut Socket, Errno> {
        match &mut self.fds.get_mut(fd)?.object {
            Object::Socket(socket) => Ok(socket),
            _ => Err(errno(libc::ENOTSOCK)),
        }
    }

    pub(super) fn socket(&mut self, domain: u64, kind: u64) -> SysResult {
        if domain != libc::AF_INET as u64 && domain != libc::AF_INET6 as u64 {
            return Err(errno(libc::EAFNOSUPPORT));
        }
        if kind & SOCK_TYPE_MASK != SOCK_STREAM {
            return Err(errno(libc::EPROTONOSUPPORT));
        }
        self.fds.insert(Descriptor {
            object: Object::Socket(Socket::default()),
            nonblocking: kind & SOCK_NONBLOCK != 0,
            cloexec: kind & SOCK_CLOEXEC != 0,
        })
    }

    pub(super) fn connect(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        addr: u64,
        len: u64,
    ) -> SysResult {
        let nonblocking = self.fds.get(fd)?.nonblocking;
        if self.socket_ref(fd)?.connection.is_some() {
            return Err(errno(libc::EISCONN));
        }
        if !(2..=128).contains(&len) {
            return Err(errno(libc::EINVAL));
        }
        let raw = memory.read_vec(addr, len)?;
        let (family, rest) = raw.split_first_chunk::<2>().ok_or(errno(libc::EINVAL))?;
        if u16::from_le_bytes(*family) != AF_INET {
            // IPv6 and the rest: there is no route anywhere.
            return Err(errno(libc::ENETUNREACH));
        }
        let Some(&[p0, p1, a, b, c, d]) = rest.first_chunk::<6>() else {
            return Err(errno(libc::EINVAL));
        };
        let port = u16::from_be_bytes([p0, p1]);
        let ip = [a, b, c, d];
        if ip[0] != 127 {
            return Err(errno(libc::ENETUNREACH));
        }
        let connection = match self.api.as_mut() {
            Some(api) if ip == RUNTIME_API_ADDR && port == RUNTIME_API_PORT => {
                api.connect().map_err(|_| errno(libc::ECONNREFUSED))?
            }
            _ => return Err(errno(libc::ECONNREFUSED)),
        };
        self.next_local_port = self.next_local_port.wrapping_add(1).max(40_000);
        let local_port = self.next_local_port;
        let socket = self.socket_mut(fd)?;
        socket.connection = Some(connection);
        socket.local_port = local_port;
        if nonblocking {
            // As on Linux: the connection completes in the background; SO_ERROR says how.
            return Err(errno(libc::EINPROGRESS));
        }
        Ok(0)
    }

    /// `read`/`recv` on a socket.
    pub(super) fn socket_recv(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
        nonblocking: bool,
    ) -> SysResult {
        self.socket_receive(memory, fd, buf, count, nonblocking, false)
    }

    fn socket_receive(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
        nonblocking: bool,
        peek: bool,
    ) -> SysResult {
        if let Object::UnixStream(end) = self.fds.get(fd)?.object {
            if peek {
                return Err(errno(libc::EOPNOTSUPP));
            }
            return self.unix_stream_read(memory, end, buf, count, nonblocking);
        }
        let socket = self.socket_ref(fd)?;
        let connection = socket.connection.ok_or(errno(libc::ENOTCONN))?;
        if socket.read_shutdown {
            // After shutdown(SHUT_RD) reads see end of file.
            return Ok(0);
        }
        let api = self.api.as_mut().ok_or(errno(libc::ENOTCONN))?;
        let output = api.pending_output(connection);
        if output.is_empty() {
            if api.is_closing(connection) || !api.is_connected(connection) {
                return Ok(0);
            }
            if count == 0 {
                return Ok(0);
            }
            return self.would_block(nonblocking);
        }
        let data = output.get(..abi::size(count)).unwrap_or(output);
        memory.write(buf, data)?;
        let n = data.len();
        if !peek {
            api.consume_output(connection, n);
            let socket = self.socket_mut(fd)?;
            socket.consumed = socket.consumed.wrapping_add(abi::count(n));
        }
        Ok(abi::count(n))
    }

    /// `write`/`send` on a socket.
    pub(super) fn socket_send(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
        nonblocking: bool,
    ) -> SysResult {
        if let Object::UnixStream(end) = self.fds.get(fd)?.object {
            return self.unix_stream_write(memory, end, buf, count, nonblocking);
        }
        let socket = self.socket_ref(fd)?;
        let connection = socket.connection.ok_or(errno(libc::ENOTCONN))?;
        if socket.write_shutdown {
            return Err(errno(libc::EPIPE));
        }
        let api = self.api.as_ref().ok_or(errno(libc::ENOTCONN))?;
        if api.is_closing(connection) || !api.is_connected(connection) {
            return Err(errno(libc::EPIPE));
        }
        let sent = self.write_chunks_to(memory, buf, count, |kernel, data| {
            let api = kernel.api.as_mut().ok_or(errno(libc::ENOTCONN))?;
            Ok(api.receive(connection, data))
        })?;
        if sent == 0 && count > 0 {
            // The server's inbox is full until the guest reads its answers.
            self.rearm_writable(fd);
            return self.would_block(nonblocking);
        }
        Ok(sent)
    }

    pub(super) fn sendto(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        len: u64,
        flags: u64,
    ) -> SysResult {
        let (dont_wait, _) = message_flags(flags, false)?;
        let nonblocking = self.fds.get(fd)?.nonblocking || dont_wait;
        self.socket_send(memory, fd, buf, len, nonblocking)
    }

    pub(super) fn recvfrom(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        len: u64,
        flags: u64,
    ) -> SysResult {
        // A connected stream socket leaves the source address alone, as Linux does.
        let (dont_wait, peek) = message_flags(flags, true)?;
        let nonblocking = self.fds.get(fd)?.nonblocking || dont_wait;
        self.socket_receive(memory, fd, buf, len, nonblocking, peek)
    }

    /// The iovecs of a `struct msghdr`.
    fn msghdr_iovecs(memory: &GuestMemory, msg: u64) -> Result<Vec<(u64, u64)>, Errno> {
        let iov: u64 = memory.read_obj(abi::field(msg, 16)?)?;
        let count: u64 = memory.read_obj(abi::field(msg, 24)?)?;
        read_iovecs(memory, iov, count)
    }

    pub(super) fn sendmsg(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        msg: u64,
        flags: u64,
    ) -> SysResult {
        let (dont_wait, _) = message_flags(flags, false)?;
        let nonblocking = self.fds.get(fd)?.nonblocking || dont_wait;
        let iovecs = Self::msghdr_iovecs(memory, msg)?;
        // Only the first piece may wait; later ones take what fits.
        self.vectored(iovecs, |kernel, base, len, done| {
            kernel.socket_send(memory, fd, base, len, nonblocking || done > 0)
        })
    }

    pub(super) fn recvmsg(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        msg: u64,
        flags: u64,
    ) -> SysResult {
        let (dont_wait, peek) = message_flags(flags, true)?;
        let nonblocking = self.fds.get(fd)?.nonblocking || dont_wait;
        let iovecs = Self::msghdr_iovecs(memory, msg)?;
        let total = if peek {
            // A peek fills the pieces in order without consuming: one read of their total.
            let mut peeked = 0u64;
            for (base, len) in iovecs {
                let n =
                    self.socket_receive(memory, fd, base, len, nonblocking || peeked > 0, true)?;
                peeked = peeked.saturating_add(n);
                if n < len {
                    break;
                }
            }
            peeked
        } else {
            self.vectored(iovecs, |kernel, base, len, done| {
                kernel.socket_recv(memory, fd, base, len, nonblocking || done > 0)
            })?
        };
        memory.write_obj(abi::field(msg, 40)?, 0u64)?; // msg_controllen
        memory.write_obj(abi::field(msg, 48)?, 0u32)?; // msg_flags
        Ok(total)
    }

    pub(super) fn shutdown(&mut self, fd: u64, how: u64) -> SysResult {
        if let Object::UnixStream(_) = self.fds.get(fd)?.object {
            return match how {
                SHUT_RD => self.unix_stream_shutdown(fd, true, false),
                SHUT_WR => self.unix_stream_shutdown(fd, false, true),
                SHUT_RDWR => self.unix_stream_shutdown(fd, true, true),
                _ => Err(errno(libc::EINVAL)),
            };
        }
        let socket = self.socket_mut(fd)?;
        if socket.connection.is_none() {
            return Err(errno(libc::ENOTCONN));
        }
        match how {
            SHUT_RD => socket.read_shutdown = true,
            SHUT_WR => socket.write_shutdown = true,
            SHUT_RDWR => {
                socket.read_shutdown = true;
                socket.write_shutdown = true;
            }
            _ => return Err(errno(libc::EINVAL)),
        }
        Ok(0)
    }

    pub(super) fn getsockname(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        addr: u64,
        len_ptr: u64,
        peer: bool,
    ) -> SysResult {
        if let Object::UnixStream(_) = self.fds.get(fd)?.object {
            // An unnamed Unix socket: the family alone.
            let len: u32 = memory.read_obj(len_ptr)?;
            let family = AF_UNIX.to_le_bytes();
            let shown = family.get(..abi::size(u64::from(len))).unwrap_or(&family);
            memory.write(addr, shown)?;
            memory.write_obj(len_ptr, 2u32)?;
            return Ok(0);
        }
        let socket = self.socket_ref(fd)?;
        let bytes = match (peer, socket.connection) {
            (true, None) => return Err(errno(libc::ENOTCONN)),
            (true, Some(_)) => sockaddr_in(RUNTIME_API_ADDR, RUNTIME_API_PORT),
            (false, Some(_)) => sockaddr_in(RUNTIME_API_ADDR, socket.local_port),
            (false, None) => sockaddr_in([0; 4], 0),
        };
        let len: u32 = memory.read_obj(len_ptr)?;
        let shown = bytes.get(..abi::size(u64::from(len))).unwrap_or(&bytes);
        memory.write(addr, shown)?;
        memory.write_obj(len_ptr, 16u32)?;
        Ok(0)
    }

    pub(super) fn getsockopt(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        level: u64,
        name: u64,
        value: u64,
        len_ptr: u64,
    ) -> SysResult {
        let answer: i32 = if let Object::UnixStream(_) = self.fds.get(fd)?.object {
            match (level, name) {
                (SOL_SOCKET, SO_TYPE) => 1, // SOCK_STREAM
                _ => 0,
            }
        } else {
            let socket = self.socket_mut(fd)?;
            match (level, name) {
                (SOL_SOCKET, SO_ERROR) => std::mem::take(&mut socket.pending_error),
                (SOL_SOCKET, SO_TYPE) => 1, // SOCK_STREAM
                _ => 0,
            }
        };
        let len: u32 = memory.read_obj(len_ptr)?;
        if len < 4 {
            return Err(errno(libc::EINVAL));
        }
        memory.write_obj(value, answer)?;
        memory.write_obj(len_ptr, 4u32)?;
        Ok(0)
    }
}
