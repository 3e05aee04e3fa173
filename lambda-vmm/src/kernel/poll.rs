//! Readiness: `poll`, `ppoll`, `epoll_*` (level- and edge-triggered) and `eventfd`, the calls
//! async runtimes such as tokio sleep in. Nothing becomes ready on its own inside the VM, so a
//! wait with nothing ready blocks until the host delivers something or its timeout passes.

use std::time::Duration;

use super::abi;
use super::fd::{Descriptor, Epoll, EventFd, Interest, Object};
use super::time::read_timespec;
use super::{Errno, Kernel, SysResult};
use crate::mm::GuestMemory;

const EPOLLIN: u32 = 0x001;
const EPOLLOUT: u32 = 0x004;
const EPOLLHUP: u32 = 0x010;
const EPOLLRDHUP: u32 = 0x2000;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;
const EPOLL_CTL_ADD: u64 = 1;
const EPOLL_CTL_DEL: u64 = 2;
const EPOLL_CTL_MOD: u64 = 3;
const POLLIN: i16 = 0x1;
const POLLOUT: i16 = 0x4;
const POLLHUP: i16 = 0x10;
const POLLNVAL: i16 = 0x20;
const EFD_SEMAPHORE: u64 = 1;
const EFD_NONBLOCK: u64 = 0o4000;
const EFD_CLOEXEC: u64 = 0o2_000_000;
/// Most events or pollfds one call handles.
const MAX_EVENTS: u64 = 1024;
/// Most registrations all of an environment's epoll instances may hold together (Linux's
/// `max_user_watches` plays this part): past it, `epoll_ctl` answers `ENOSPC`.
pub const MAX_EPOLL_WATCHES: usize = 8192;
const EPOLL_CLOEXEC: u64 = 0o2_000_000;

fn errno(code: i32) -> Errno {
    Errno(code)
}

/// A millisecond timeout argument (an `int`): negative means none.
pub fn millis_timeout(arg: u64) -> Option<Duration> {
    u64::try_from(abi::int(arg)).ok().map(Duration::from_millis)
}

/// Whether a descriptor can be read or written without waiting.
#[derive(Debug, Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    hangup: bool,
    /// Grows whenever new input arrives: the edge for `EPOLLET`.
    generation: u64,
}

impl Kernel {
    fn readiness(&self, fd: u64) -> Option<Readiness> {
        let descriptor = self.fds.get(fd).ok()?;
        Some(match &descriptor.object {
            Object::Socket(socket) => match (socket.connection, self.api.as_ref()) {
                (Some(connection), Some(api)) => {
                    let pending = abi::count(api.pending_output(connection).len());
                    let closing = api.is_closing(connection) || !api.is_connected(connection);
                    Readiness {
                        readable: pending > 0 || closing,
                        writable: !closing,
                        hangup: closing,
                        generation: socket
                            .consumed
                            .wrapping_add(pending)
                            .wrapping_add(u64::from(closing)),
                    }
                }
                _ => Readiness {
                    readable: false,
                    writable: false,
                    hangup: true,
                    generation: 0,
                },
            },
            Object::EventFd(event) => Readiness {
                readable: event.value > 0,
                writable: true,
                hangup: false,
                generation: event.writes,
            },
            Object::UnixStream(end) => {
                let capacity = self.pipe_capacity();
                let read = end.rx.map(|rx| self.pipes.readiness(rx, capacity));
                let write = end.tx.map(|tx| self.pipes.readiness(tx, capacity));
                Readiness {
                    // A direction shut down reads as end of file, or a write that fails now.
                    readable: read.as_ref().is_none_or(|r| r.readable),
                    writable: write.as_ref().is_none_or(|w| w.writable),
                    hangup: read.as_ref().is_none_or(|r| r.hangup),
                    generation: read.map_or(0, |r| r.generation),
                }
            }
            Object::Pipe(end) => {
                let pipe = self.pipes.readiness(*end, self.pipe_capacity());
                Readiness {
                    readable: pipe.readable,
                    writable: pipe.writable,
                    hangup: pipe.hangup,
                    generation: pipe.generation,
                }
            }
            Object::Stdin => Readiness {
                readable: !self.stdin_held(),
                writable: false,
                hangup: false,
                // A held event's delivery is the one edge stdin ever has.
                generation: u64::from(!self.stdin_held()),
            },
            // The write ends of pipes, as far as the program can tell (`fstat` says FIFO).
            Object::Stdout | Object::Stderr => Readiness {
                readable: false,
                writable: true,
                hangup: false,
                generation: 0,
            },
            Object::Epoll(_) => Readiness {
                readable: false,
                writable: false,
                hangup: false,
                generation: 0,
            },
            _ => Readiness {
                readable: true,
                writable: true,
                hangup: false,
                generation: 0,
            },
        })
    }

    /// After a send found the peer's inbox full, writability becomes a new edge.
    pub(super) fn rearm_writable(&mut self, fd: u64) {
        for other in self.fds.open_fds() {
            if let Ok(Descriptor {
                object: Object::Epoll(epoll),
                ..
            }) = self.fds.get_mut(other)
                && let Some(interest) = epoll.interests.get_mut(&fd)
            {
                interest.reported_out = false;
            }
        }
    }

    pub(super) fn eventfd(&mut self, initial: u64, flags: u64) -> SysResult {
        if flags & !(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC) != 0 {
            return Err(errno(libc::EINVAL));
        }
        self.fds.insert(Descriptor {
            object: Object::EventFd(EventFd {
                value: initial & 0xffff_ffff,
                writes: 0,
                semaphore: flags & EFD_SEMAPHORE != 0,
            }),
            nonblocking: flags & EFD_NONBLOCK != 0,
            cloexec: flags & EFD_CLOEXEC != 0,
        })
    }

    pub(super) fn eventfd_read(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
        nonblocking: bool,
    ) -> SysResult {
        if count < 8 {
            return Err(errno(libc::EINVAL));
        }
        memory.validate(buf, 8)?;
        let Object::EventFd(event) = &mut self.fds.get_mut(fd)?.object else {
            return Err(errno(libc::EBADF));
        };
        if event.value == 0 {
            return self.would_block(nonblocking);
        }
        let value = if event.semaphore { 1 } else { event.value };
        event.value = event.value.saturating_sub(value);
        memory.write_obj(buf, value)?;
        Ok(8)
    }

    pub(super) fn eventfd_write(
        &mut self,
        memory: &GuestMemory,
        fd: u64,
        buf: u64,
        count: u64,
    ) -> SysResult {
        if count < 8 {
            return Err(errno(libc::EINVAL));
        }
        let value: u64 = memory.read_obj(buf)?;
        if value == u64::MAX {
            return Err(errno(libc::EINVAL));
        }
        let Object::EventFd(event) = &mut self.fds.get_mut(fd)?.object else {
            return Err(errno(libc::EBADF));
        };
        event.value = event
            .value
            .checked_add(value)
            .filter(|v| *v < u64::MAX)
            .ok_or(errno(libc::EAGAIN))?;
        event.writes = event.writes.wrapping_add(1);
        Ok(8)
    }

    /// `epoll_create`: the size hint must be positive.
    pub(super) fn epoll_create(&mut self, size: u64) -> SysResult {
        if abi::int(size) <= 0 {
            return Err(errno(libc::EINVAL));
        }
        self.epoll_create1(0)
    }

    /// `epoll_create1`: `EPOLL_CLOEXEC` is the only flag.
    pub(super) fn epoll_create1(&mut self, flags: u64) -> SysResult {
        if flags & !EPOLL_CLOEXEC != 0 {
            return Err(errno(libc::EINVAL));
        }
        self.fds.insert(Descriptor {
            object: Object::Epoll(Epoll::default()),
            nonblocking: false,
            cloexec: flags != 0,
        })
    }

    /// Checks the epoll instances of a kernel read from a snapshot file: each watches only
    /// open descriptors (closing a descriptor takes its registrations out of every
    /// instance), and all of them together hold at most [`MAX_EPOLL_WATCHES`] (`epoll_ctl`
    /// counts an instance once for each of its descriptors, so no program holds more). A
    /// registration of a closed descriptor would report a file opened later under its
    /// number, which the program never asked for; more than the bound would make each
    /// `epoll_wait` walk more than a program could. Says what is wrong.
    pub(super) fn check_epolls(&self) -> Result<(), String> {
        let mut watches = 0usize;
        for descriptor in self.fds.descriptions() {
            let Object::Epoll(epoll) = &descriptor.object else {
                continue;
            };
            if let Some(fd) = epoll
                .interests
                .keys()
                .find(|&&fd| self.fds.get(fd).is_err())
            {
                return Err(format!(
                    "an epoll instance watches descriptor {fd}, which is closed"
                ));
            }
            watches = watches.saturating_add(epoll.interests.len());
        }
        if watches > MAX_EPOLL_WATCHES {
            return Err(format!(
                "epoll instances hold {watches} registrations, more than {MAX_EPOLL_WATCHES}"
            ));
        }
        Ok(())
    }

    /// Registrations held by all epoll instances together.
    fn epoll_watches(&self) -> usize {
        self.fds
            .open_fds()
            .into_iter()
            .filter_map(|fd| match &self.fds.get(fd).ok()?.object {
                Object::Epoll(epoll) => Some(epoll.interests.len()),
                _ => None,
            })
            .fold(0usize, usize::saturating_add)
    }

    pub(super) fn epoll_ctl(
        &mut self,
        memory: &GuestMemory,
        epfd: u64,
        op: u64,
        fd: u64,
        event: u64,
    ) -> SysResult {
        if epfd == fd {
            return Err(errno(libc::EINVAL));
        }
        match &self.fds.get(fd)?.object {
            // Standard input, output and error are pipes to the program (`fstat` says FIFO),
            // so epoll takes them, as it takes pipes.
            Object::Socket(_)
            | Object::EventFd(_)
            | Object::Pipe(_)
            | Object::UnixStream(_)
            | Object::Stdin
            | Object::Stdout
            | Object::Stderr => {}
            Object::Epoll(_) => return Err(errno(libc::EINVAL)),
            _ => return Err(errno(libc::EPERM)),
        }
        let requested = if op == EPOLL_CTL_DEL {
            None
        } else {
            let raw: [u8; 12] = memory.read_obj(event)?;
            let (events, data) = raw.split_at(4);
            let events = u32::from_le_bytes(events.try_into().map_err(|_| errno(libc::EFAULT))?);
            let data = u64::from_le_bytes(data.try_into().map_err(|_| errno(libc::EFAULT))?);
            Some((events, data))
        };
        if op == EPOLL_CTL_ADD && self.epoll_watches() >= MAX_EPOLL_WATCHES {
            return Err(errno(libc::ENOSPC));
        }
        let Object::Epoll(epoll) = &mut self.fds.get_mut(epfd)?.object else {
            return Err(errno(libc::EINVAL));
        };
        match (op, requested) {
            (EPOLL_CTL_ADD, Some((events, data))) => {
                if epoll.interests.contains_key(&fd) {
                    return Err(errno(libc::EEXIST));
                }
                epoll.interests.insert(
                    fd,
                    Interest {
                        events,
                        data,
                        ..Interest::default()
                    },
                );
            }
            (EPOLL_CTL_MOD, Some((events, data))) => {
                let interest = epoll.interests.get_mut(&fd).ok_or(errno(libc::ENOENT))?;
                *interest = Interest {
                    events,
                    data,
                    ..Interest::default()
                };
            }
            (EPOLL_CTL_DEL, None) => {
                epoll.interests.remove(&fd).ok_or(errno(libc::ENOENT))?;
            }
            _ => return Err(errno(libc::EINVAL)),
        }
        Ok(0)
    }

    pub(super) fn epoll_wait(
        &mut self,
        memory: &GuestMemory,
        epfd: u64,
        events: u64,
        max_events: u64,
        timeout: Option<Duration>,
    ) -> SysResult {
        let max_events = match u64::try_from(abi::int(max_events)) {
            Ok(0) | Err(_) => return Err(errno(libc::EINVAL)),
            Ok(max_events) => max_events.min(MAX_EVENTS),
        };
        memory.validate(events, max_events.saturating_mul(12))?;
        let Object::Epoll(epoll) = &mut self.fds.get_mut(epfd)?.object else {
            return Err(errno(libc::EINVAL));
        };
        let mut interests = std::mem::take(&mut epoll.interests);
        let mut ready = Vec::new();
        interests.retain(|&fd, _| self.fds.get(fd).is_ok());
        for (&fd, interest) in interests.iter_mut() {
            if abi::count(ready.len()) >= max_events {
                break;
            }
            let Some(state) = self.readiness(fd) else {
                continue;
            };
            let edge = interest.events & EPOLLET != 0;
            let mut fired = 0;
            if interest.events & EPOLLIN != 0 && state.readable {
                if !edge || interest.reported_in != Some(state.generation) {
                    fired |= EPOLLIN;
                    if state.hangup {
                        fired |= EPOLLHUP | (interest.events & EPOLLRDHUP);
                    }
                    interest.reported_in = Some(state.generation);
                }
            } else if interest.events & EPOLLIN == 0 && state.hangup && !edge {
                fired |= EPOLLHUP;
            }
            if interest.events & EPOLLOUT != 0
                && state.writable
                && (!edge || !interest.reported_out)
            {
                fired |= EPOLLOUT;
                interest.reported_out = true;
            }
            if fired != 0 {
                if interest.events & EPOLLONESHOT != 0 {
                    interest.events = 0;
                }
                ready.push((fired, interest.data));
            }
        }
        if let Object::Epoll(epoll) = &mut self.fds.get_mut(epfd)?.object {
            epoll.interests = interests;
        }
        if ready.is_empty() {
            return match timeout {
                Some(Duration::ZERO) => Ok(0),
                timeout => self.wait(timeout).map(|()| 0),
            };
        }
        let mut bytes = Vec::with_capacity(ready.len().saturating_mul(12));
        for (fired, data) in &ready {
            bytes.extend_from_slice(&fired.to_le_bytes());
            bytes.extend_from_slice(&data.to_le_bytes());
        }
        memory.write(events, &bytes)?;
        Ok(abi::count(ready.len()))
    }

    pub(super) fn poll(
        &mut self,
        memory: &GuestMemory,
        fds: u64,
        count: u64,
        timeout: Option<Duration>,
    ) -> SysResult {
        if count > MAX_EVENTS {
            return Err(errno(libc::EINVAL));
        }
        let mut raw = memory.read_vec(fds, count.saturating_mul(8))?;
        let mut ready: u64 = 0;
        for entry in raw.chunks_exact_mut(8) {
            let Some((&mut [f0, f1, f2, f3, e0, e1], revents_out)) =
                entry.split_first_chunk_mut::<6>()
            else {
                continue;
            };
            let fd = i32::from_le_bytes([f0, f1, f2, f3]);
            let events = i16::from_le_bytes([e0, e1]);
            let revents = match u64::try_from(fd) {
                Err(_) => 0,
                Ok(fd) => match self.readiness(fd) {
                    None => POLLNVAL,
                    Some(state) => {
                        let mut revents = 0;
                        if state.readable {
                            revents |= events & POLLIN;
                        }
                        if state.writable {
                            revents |= events & POLLOUT;
                        }
                        if state.hangup {
                            revents |= POLLHUP;
                        }
                        revents
                    }
                },
            };
            revents_out.copy_from_slice(&revents.to_le_bytes());
            if revents != 0 {
                ready = ready.saturating_add(1);
            }
        }
        if ready == 0 && timeout != Some(Duration::ZERO) {
            self.wait(timeout)?;
        }
        memory.write(fds, &raw)?;
        Ok(ready)
    }

    pub(super) fn ppoll(
        &mut self,
        memory: &GuestMemory,
        fds: u64,
        count: u64,
        timeout: u64,
    ) -> SysResult {
        let timeout = if timeout == 0 {
            None
        } else {
            Some(read_timespec(memory, timeout)?)
        };
        self.poll(memory, fds, count, timeout)
    }
}
