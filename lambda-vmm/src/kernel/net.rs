//! The loopback network inside the micro-VM. There is no network device: a TCP socket that
//! connects to the Runtime API address is joined to the environment's [`RuntimeApi`], and
//! every other destination fails as a closed network would.
//!
//! [`RuntimeApi`]: lambda_core::runtime_api::RuntimeApi

use super::fd::{Descriptor, Object, Socket};
use super::files::read_iovecs;
use super::{Errno, Kernel, SysResult};
use crate::vm::GuestMemory;

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
const SOL_SOCKET: u64 = 1;
const SO_TYPE: u64 = 3;
const SO_ERROR: u64 = 4;

fn errno(code: i32) -> Errno {
    Errno(code)
}

fn sockaddr_in(addr: [u8; 4], port: u16) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
    bytes[2..4].copy_from_slice(&port.to_be_bytes());
    bytes[4..8].copy_from_slice(&addr);
    bytes
}

impl Kernel {
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
        let family = u16::from_le_bytes([raw[0], raw[1]]);
        if family != libc::AF_INET as u16 {
            // IPv6 and the rest: there is no route anywhere.
            return Err(errno(libc::ENETUNREACH));
        }
        if raw.len() < 8 {
            return Err(errno(libc::EINVAL));
        }
        let port = u16::from_be_bytes([raw[2], raw[3]]);
        let ip = [raw[4], raw[5], raw[6], raw[7]];
        if ip[0] != 127 {
            return Err(errno(libc::ENETUNREACH));
        }
        let connection = match self.api.as_mut() {
            Some(api) if ip == RUNTIME_API_ADDR && port == RUNTIME_API_PORT => api.connect(),
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
        let connection = self
            .socket_ref(fd)?
            .connection
            .ok_or(errno(libc::ENOTCONN))?;
        let api = self.api.as_mut().ok_or(errno(libc::ENOTCONN))?;
        let output = api.pending_output(connection);
        if output.is_empty() {
            if api.is_closing(connection) || !api.is_connected(connection) {
                return Ok(0);
            }
            return self.would_block(nonblocking);
        }
        let n = output.len().min(count as usize);
        memory.write(buf, &output[..n])?;
        if !peek {
            api.consume_output(connection, n);
            self.socket_mut(fd)?.consumed += n as u64;
        }
        Ok(n as u64)
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
    ) -> SysResult {
        let nonblocking = self.fds.get(fd)?.nonblocking;
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
        let nonblocking = self.fds.get(fd)?.nonblocking || flags & MSG_DONTWAIT != 0;
        self.socket_receive(memory, fd, buf, len, nonblocking, flags & MSG_PEEK != 0)
    }

    /// The iovecs of a `struct msghdr`.
    fn msghdr_iovecs(memory: &GuestMemory, msg: u64) -> Result<Vec<(u64, u64)>, Errno> {
        let iov: u64 = memory.read_obj(msg + 16)?;
        let count: u64 = memory.read_obj(msg + 24)?;
        read_iovecs(memory, iov, count)
    }

    pub(super) fn sendmsg(&mut self, memory: &GuestMemory, fd: u64, msg: u64) -> SysResult {
        let nonblocking = self.fds.get(fd)?.nonblocking;
        let iovecs = Self::msghdr_iovecs(memory, msg)?;
        // Only the first piece may wait; later ones take what fits.
        self.vectored(iovecs, |kernel, base, len, done| {
            kernel.socket_send(memory, fd, base, len, nonblocking || done > 0)
        })
    }

    pub(super) fn recvmsg(&mut self, memory: &GuestMemory, fd: u64, msg: u64) -> SysResult {
        let nonblocking = self.fds.get(fd)?.nonblocking;
        let iovecs = Self::msghdr_iovecs(memory, msg)?;
        let total = self.vectored(iovecs, |kernel, base, len, done| {
            kernel.socket_recv(memory, fd, base, len, nonblocking || done > 0)
        })?;
        memory.write_obj(msg + 40, 0u64)?; // msg_controllen
        memory.write_obj(msg + 48, 0u32)?; // msg_flags
        Ok(total)
    }

    pub(super) fn shutdown(&mut self, fd: u64, how: u64) -> SysResult {
        let socket = self.socket_mut(fd)?;
        if socket.connection.is_none() {
            return Err(errno(libc::ENOTCONN));
        }
        match how {
            0 => Ok(0),
            1 | 2 => {
                socket.write_shutdown = true;
                Ok(0)
            }
            _ => Err(errno(libc::EINVAL)),
        }
    }

    pub(super) fn accept(&mut self) -> SysResult {
        Err(errno(libc::EOPNOTSUPP))
    }

    pub(super) fn getsockname(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        addr: u64,
        len_ptr: u64,
        peer: bool,
    ) -> SysResult {
        let socket = self.socket_ref(fd)?;
        let bytes = match (peer, socket.connection) {
            (true, None) => return Err(errno(libc::ENOTCONN)),
            (true, Some(_)) => sockaddr_in(RUNTIME_API_ADDR, RUNTIME_API_PORT),
            (false, Some(_)) => sockaddr_in(RUNTIME_API_ADDR, socket.local_port),
            (false, None) => sockaddr_in([0; 4], 0),
        };
        let len: u32 = memory.read_obj(len_ptr)?;
        let n = (len as usize).min(bytes.len());
        memory.write(addr, &bytes[..n])?;
        memory.write_obj(len_ptr, bytes.len() as u32)?;
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
        let socket = self.socket_mut(fd)?;
        let answer: i32 = match (level, name) {
            (SOL_SOCKET, SO_ERROR) => std::mem::take(&mut socket.pending_error),
            (SOL_SOCKET, SO_TYPE) => SOCK_STREAM as i32,
            _ => 0,
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
