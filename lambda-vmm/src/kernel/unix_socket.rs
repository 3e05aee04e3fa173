//! Unix stream socket pairs (`socketpair(AF_UNIX, SOCK_STREAM)`): two connected ends, each a
//! pipe one way and a pipe the other, for a program's threads to talk through (tokio's
//! signal and process drivers make one at start-up). There is no Unix socket namespace:
//! `socket(AF_UNIX, ...)` still answers `EAFNOSUPPORT`.

use super::fd::{Descriptor, Object};
use super::pipe::{PipeEnd, write_fd_pair};
use super::{Errno, Kernel, SysResult};
use crate::mm::GuestMemory;

const AF_UNIX: u64 = 1;
const SOCK_STREAM: u64 = 1;
const SOCK_TYPE_MASK: u64 = 0xf;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2_000_000;

/// One end of a socket pair: the pipe it reads from and the pipe it writes to (`None` once
/// shut down that way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnixStream {
    /// Where its reads come from.
    pub rx: Option<PipeEnd>,
    /// Where its writes go.
    pub tx: Option<PipeEnd>,
}

impl Kernel {
    /// `socketpair(domain, type, protocol, sv)`.
    pub(super) fn socketpair(
        &mut self,
        memory: &GuestMemory,
        domain: u64,
        kind: u64,
        protocol: u64,
        sv: u64,
    ) -> SysResult {
        if domain != AF_UNIX {
            return Err(Errno(libc::EAFNOSUPPORT));
        }
        if kind & SOCK_TYPE_MASK != SOCK_STREAM
            || kind & !(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0
        {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        if protocol != 0 {
            return Err(Errno(libc::EPROTONOSUPPORT));
        }
        memory.validate(sv, 8)?;
        let one_way = self.pipes.make();
        let other_way = self.pipes.make();
        let ends = [
            UnixStream {
                rx: Some(PipeEnd {
                    id: one_way,
                    write: false,
                }),
                tx: Some(PipeEnd {
                    id: other_way,
                    write: true,
                }),
            },
            UnixStream {
                rx: Some(PipeEnd {
                    id: other_way,
                    write: false,
                }),
                tx: Some(PipeEnd {
                    id: one_way,
                    write: true,
                }),
            },
        ];
        let mut fds: Vec<u64> = Vec::with_capacity(2);
        for end in ends {
            let inserted = self.fds.insert(Descriptor {
                object: Object::UnixStream(end),
                nonblocking: kind & SOCK_NONBLOCK != 0,
                cloexec: kind & SOCK_CLOEXEC != 0,
            });
            match inserted {
                Ok(fd) => {
                    for pipe_end in [end.rx, end.tx].into_iter().flatten() {
                        self.pipes.open(pipe_end);
                    }
                    fds.push(fd);
                }
                Err(error) => {
                    // Out of descriptors: the end already made goes again, and the pipes.
                    for fd in fds {
                        self.close(fd)?;
                    }
                    self.pipes.forget_if_unused(one_way);
                    self.pipes.forget_if_unused(other_way);
                    return Err(error);
                }
            }
        }
        let (Some(&first), Some(&second)) = (fds.first(), fds.get(1)) else {
            return Err(Errno(libc::EMFILE));
        };
        write_fd_pair(memory, sv, first, second)
    }

    /// A read or `recv` on a socket-pair end.
    pub(super) fn unix_stream_read(
        &mut self,
        memory: &GuestMemory,
        end: UnixStream,
        buf: u64,
        count: u64,
        nonblocking: bool,
    ) -> SysResult {
        match end.rx {
            Some(rx) => self.pipe_read(memory, rx, buf, count, nonblocking),
            // Shut down for reading: end of file.
            None => Ok(0),
        }
    }

    /// A write or `send` on a socket-pair end.
    pub(super) fn unix_stream_write(
        &mut self,
        memory: &GuestMemory,
        end: UnixStream,
        buf: u64,
        count: u64,
        nonblocking: bool,
    ) -> SysResult {
        match end.tx {
            Some(tx) => self.pipe_write(memory, tx, buf, count, nonblocking),
            None => Err(Errno(libc::EPIPE)),
        }
    }

    /// `shutdown` of a socket-pair end: the directions given are closed now (the peer sees
    /// end of file, or `EPIPE`).
    pub(super) fn unix_stream_shutdown(&mut self, fd: u64, read: bool, write: bool) -> SysResult {
        let Object::UnixStream(end) = &mut self.fds.get_mut(fd)?.object else {
            return Err(Errno(libc::ENOTSOCK));
        };
        let mut closed = Vec::new();
        if read {
            closed.extend(end.rx.take());
        }
        if write {
            closed.extend(end.tx.take());
        }
        for pipe_end in closed {
            self.pipes.close(pipe_end);
        }
        Ok(0)
    }
}
