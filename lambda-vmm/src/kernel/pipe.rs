//! Pipes: `pipe` and `pipe2` make a buffer with a read end and a write end, for a program's
//! threads to talk through (Go's runtime wakes its network poller through one). Linux's
//! rules: a read of an empty pipe waits while a write end is open and reads end of file
//! after; a write of at most `PIPE_BUF` bytes goes in whole or waits; a write with no read
//! end open answers `EPIPE` (and the kernel raises `SIGPIPE` on the writer, as Linux does).

use std::collections::{BTreeMap, VecDeque};

use super::fd::{Descriptor, Object};
use super::{Errno, Kernel, SysResult, abi};
use crate::mm::GuestMemory;

/// Bytes a pipe holds (Linux's default pipe size).
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// Bytes all the program's pipes hold together: writes past it wait, as writes to a full
/// pipe do.
pub const PIPE_BYTES_MAX: usize = 4 << 20;
/// Writes of at most this many bytes are atomic (Linux's `PIPE_BUF`).
const PIPE_BUF: usize = 4096;
/// Bytes copied per step between guest memory and a pipe.
const CHUNK: u64 = 16 * 1024;

/// One pipe's buffer and how many open descriptions each end has.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Pipe {
    buffer: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// Bytes written so far (the read end's readiness generation).
    written: u64,
}

/// The program's pipes, by id.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Pipes {
    pipes: BTreeMap<u64, Pipe>,
    next_id: u64,
    /// Bytes buffered in all pipes.
    buffered: usize,
}

/// Which end of which pipe a descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PipeEnd {
    /// The pipe.
    pub id: u64,
    /// Whether this is the write end.
    pub write: bool,
}

/// What `poll` and `epoll` see of a pipe end.
pub(super) struct PipeReadiness {
    /// Data to read, or end of file.
    pub readable: bool,
    /// Room to write, or no read end (a write answers `EPIPE` at once).
    pub writable: bool,
    /// The other end is closed.
    pub hangup: bool,
    /// Changes whenever new data arrives (for edge-triggered epoll).
    pub generation: u64,
}

impl Pipes {
    /// How a pipe end reads for readiness, for pipes of `capacity` bytes
    /// ([`Kernel::pipe_capacity`]).
    pub(super) fn readiness(&self, end: PipeEnd, capacity: usize) -> PipeReadiness {
        let Some(pipe) = self.pipes.get(&end.id) else {
            return PipeReadiness {
                readable: false,
                writable: false,
                hangup: true,
                generation: 0,
            };
        };
        if end.write {
            PipeReadiness {
                readable: false,
                writable: pipe.readers == 0 || self.room(pipe, capacity) > 0,
                hangup: pipe.readers == 0,
                generation: 0,
            }
        } else {
            PipeReadiness {
                readable: !pipe.buffer.is_empty() || pipe.writers == 0,
                writable: false,
                hangup: pipe.writers == 0,
                generation: pipe.written.wrapping_add(u64::from(pipe.writers == 0)),
            }
        }
    }

    /// Bytes `pipe`, of `capacity` bytes, can take now.
    fn room(&self, pipe: &Pipe, capacity: usize) -> usize {
        capacity
            .saturating_sub(pipe.buffer.len())
            .min(PIPE_BYTES_MAX.saturating_sub(self.buffered))
    }

    /// Checks pipes read from a snapshot file against what these methods could have made:
    /// ids below the next one handed out, an end of each open (a pipe with neither is gone),
    /// and the count of bytes buffered in all of them (what bounds them together) equal to
    /// what they hold and within [`PIPE_BYTES_MAX`]. Says what is wrong.
    pub(super) fn check(&self) -> Result<(), String> {
        let mut held = 0usize;
        for (id, pipe) in &self.pipes {
            if *id >= self.next_id {
                return Err(format!("pipe {id} has an id not yet handed out"));
            }
            if pipe.readers == 0 && pipe.writers == 0 {
                return Err(format!("pipe {id} has no end open"));
            }
            held = held.saturating_add(pipe.buffer.len());
        }
        if held != self.buffered || held > PIPE_BYTES_MAX {
            return Err(format!(
                "pipes holding {held} bytes count {} (at most {PIPE_BYTES_MAX})",
                self.buffered
            ));
        }
        Ok(())
    }

    /// Checks the pipes' counts of open descriptions against `ends`, the pipe end of each
    /// open description in the descriptor table (a Unix stream's two ends each): every pipe
    /// named exists, and every pipe counts exactly the readers and writers named. A count
    /// above what is open would keep a pipe, and what it holds, after its last descriptor
    /// closed (its reader waiting for ever for an end of file); one below would drop it while
    /// a descriptor still names it. Says what is wrong.
    pub(super) fn check_ends(&self, ends: impl IntoIterator<Item = PipeEnd>) -> Result<(), String> {
        let mut named = BTreeMap::<u64, (usize, usize)>::new();
        for end in ends {
            if !self.pipes.contains_key(&end.id) {
                return Err(format!(
                    "a descriptor names pipe {}, which does not exist",
                    end.id
                ));
            }
            let (readers, writers) = named.entry(end.id).or_default();
            let count = if end.write { writers } else { readers };
            *count = count.saturating_add(1);
        }
        for (id, pipe) in &self.pipes {
            let (readers, writers) = named.get(id).copied().unwrap_or_default();
            if (pipe.readers, pipe.writers) != (readers, writers) {
                return Err(format!(
                    "pipe {id} counts {} readers and {} writers where descriptors open {readers} and {writers}",
                    pipe.readers, pipe.writers
                ));
            }
        }
        Ok(())
    }

    /// A new pipe with no end open yet; its id.
    pub(super) fn make(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        self.pipes.insert(id, Pipe::default());
        id
    }

    /// Drops pipe `id` if no end of it is open (a pipe whose descriptors could not be made).
    pub(super) fn forget_if_unused(&mut self, id: u64) {
        if self
            .pipes
            .get(&id)
            .is_some_and(|pipe| pipe.readers == 0 && pipe.writers == 0)
        {
            self.pipes.remove(&id);
        }
    }

    /// One more open description of `end` (a new pipe's, or one a `dup` did not share).
    pub(super) fn open(&mut self, end: PipeEnd) {
        if let Some(pipe) = self.pipes.get_mut(&end.id) {
            if end.write {
                pipe.writers = pipe.writers.saturating_add(1);
            } else {
                pipe.readers = pipe.readers.saturating_add(1);
            }
        }
    }

    /// The last descriptor of an open description of `end` closed; a pipe with neither end
    /// open is gone, with what it held.
    pub(super) fn close(&mut self, end: PipeEnd) {
        let Some(pipe) = self.pipes.get_mut(&end.id) else {
            return;
        };
        if end.write {
            pipe.writers = pipe.writers.saturating_sub(1);
        } else {
            pipe.readers = pipe.readers.saturating_sub(1);
        }
        if pipe.readers == 0 && pipe.writers == 0 {
            let held = pipe.buffer.len();
            self.pipes.remove(&end.id);
            self.buffered = self.buffered.saturating_sub(held);
        }
    }
}

/// Writes two descriptors as the `int[2]` that `pipe2` and `socketpair` fill.
pub(super) fn write_fd_pair(memory: &GuestMemory, addr: u64, first: u64, second: u64) -> SysResult {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&abi::uint(first).to_le_bytes());
    bytes[4..].copy_from_slice(&abi::uint(second).to_le_bytes());
    memory.write(addr, &bytes)?;
    Ok(0)
}

const O_NONBLOCK: u64 = libc::O_NONBLOCK as u64;
const O_CLOEXEC: u64 = libc::O_CLOEXEC as u64;

impl Kernel {
    /// Bytes a pipe holds: [`PIPE_CAPACITY`], or while a child process runs (its parent
    /// waiting, `fork.rs`) up to [`PIPE_BYTES_MAX`], as the parent reading it cannot run
    /// until the child ends.
    pub(super) fn pipe_capacity(&self) -> usize {
        if self.parents.is_empty() {
            PIPE_CAPACITY
        } else {
            PIPE_BYTES_MAX
        }
    }

    /// `pipe2(fds, flags)` (and `pipe`, with no flags): the read end in `fds[0]`, the write
    /// end in `fds[1]`.
    pub(super) fn pipe2(&mut self, memory: &GuestMemory, fds: u64, flags: u64) -> SysResult {
        if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
            return Err(Errno(libc::EINVAL));
        }
        memory.validate(fds, 8)?;
        let id = self.pipes.make();
        let descriptor = |write| Descriptor {
            object: Object::Pipe(PipeEnd { id, write }),
            nonblocking: flags & O_NONBLOCK != 0,
            cloexec: flags & O_CLOEXEC != 0,
        };
        let read_end = PipeEnd { id, write: false };
        let write_end = PipeEnd { id, write: true };
        let read_fd = match self.fds.insert(descriptor(false)) {
            Ok(fd) => fd,
            Err(error) => {
                self.pipes.pipes.remove(&id);
                return Err(error);
            }
        };
        self.pipes.open(read_end);
        let write_fd = match self.fds.insert(descriptor(true)) {
            Ok(fd) => fd,
            Err(error) => {
                self.close(read_fd)?;
                return Err(error);
            }
        };
        self.pipes.open(write_end);
        write_fd_pair(memory, fds, read_fd, write_fd)
    }

    /// `read` on a pipe end.
    pub(super) fn pipe_read(
        &mut self,
        memory: &GuestMemory,
        end: PipeEnd,
        buf: u64,
        count: u64,
        nonblocking: bool,
    ) -> SysResult {
        if end.write {
            return Err(Errno(libc::EBADF));
        }
        if count == 0 {
            return Ok(0);
        }
        memory.validate(buf, count.min(abi::count(PIPE_CAPACITY)))?;
        match self.pipes.pipes.get(&end.id) {
            None => return Ok(0),
            Some(pipe) if pipe.buffer.is_empty() && pipe.writers == 0 => return Ok(0),
            Some(pipe) if pipe.buffer.is_empty() => return self.would_block(nonblocking),
            Some(_) => {}
        }
        let Some(pipe) = self.pipes.pipes.get_mut(&end.id) else {
            return Ok(0);
        };
        let mut done: u64 = 0;
        while done < count && !pipe.buffer.is_empty() {
            let take = abi::size(count.saturating_sub(done).min(CHUNK)).min(pipe.buffer.len());
            let chunk: Vec<u8> = pipe.buffer.drain(..take).collect();
            memory.write(abi::field(buf, done)?, &chunk)?;
            done = done.saturating_add(abi::count(take));
        }
        self.pipes.buffered = self.pipes.buffered.saturating_sub(abi::size(done));
        Ok(done)
    }

    /// `write` on a pipe end.
    pub(super) fn pipe_write(
        &mut self,
        memory: &GuestMemory,
        end: PipeEnd,
        buf: u64,
        count: u64,
        nonblocking: bool,
    ) -> SysResult {
        if !end.write {
            return Err(Errno(libc::EBADF));
        }
        let Some(pipe) = self.pipes.pipes.get(&end.id) else {
            return Err(Errno(libc::EPIPE));
        };
        if pipe.readers == 0 {
            return Err(Errno(libc::EPIPE));
        }
        if count == 0 {
            return Ok(0);
        }
        let room = self.pipes.room(pipe, self.pipe_capacity());
        // A write of at most PIPE_BUF bytes goes in whole or not at all.
        if room == 0 || (abi::size(count) <= PIPE_BUF && room < abi::size(count)) {
            return self.would_block(nonblocking);
        }
        let take = abi::count(room).min(count);
        let mut chunk = Vec::with_capacity(abi::size(take.min(CHUNK)));
        let mut done: u64 = 0;
        while done < take {
            let step = take.saturating_sub(done).min(CHUNK);
            chunk.clear();
            memory.read_into(abi::field(buf, done)?, step, &mut chunk)?;
            let Some(pipe) = self.pipes.pipes.get_mut(&end.id) else {
                break;
            };
            pipe.buffer.extend(chunk.iter());
            pipe.written = pipe.written.wrapping_add(step);
            self.pipes.buffered = self.pipes.buffered.saturating_add(chunk.len());
            done = done.saturating_add(step);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forged_state::assert_refused;

    #[test]
    fn pipes_these_methods_could_not_make_are_refused() {
        let mut good = Pipes::default();
        let id = good.make();
        good.open(PipeEnd { id, write: false });
        good.open(PipeEnd { id, write: true });
        if let Some(pipe) = good.pipes.get_mut(&id) {
            pipe.buffer.extend(b"held");
        }
        good.buffered = 4;
        good.check().unwrap();
        let refused = |forge: &dyn Fn(&mut Pipes), because: &str| {
            assert_refused(&good, forge, Pipes::check, because);
        };
        // Room the limit on all pipes together would not give.
        refused(&|pipes| pipes.buffered = 0, "pipes holding 4 bytes count 0");
        refused(
            &|pipes| {
                let pipe = pipes.pipes.get_mut(&0).unwrap();
                pipe.buffer.resize(PIPE_BYTES_MAX + 1, 0);
                pipes.buffered = PIPE_BYTES_MAX + 1;
            },
            "at most",
        );
        refused(&|pipes| pipes.next_id = 0, "not yet handed out");
        refused(
            &|pipes| {
                pipes.close(PipeEnd {
                    id: 0,
                    write: false,
                });
                pipes.pipes.get_mut(&0).unwrap().writers = 0;
            },
            "no end open",
        );
    }

    #[test]
    fn counts_of_open_ends_other_than_the_descriptors_are_refused() {
        let mut pipes = Pipes::default();
        let id = pipes.make();
        let reader = PipeEnd { id, write: false };
        let writer = PipeEnd { id, write: true };
        pipes.open(reader);
        pipes.open(writer);
        pipes.open(writer);
        pipes.check_ends([reader, writer, writer]).unwrap();
        let refused = |ends: &[PipeEnd], because: &str| {
            let why = pipes.check_ends(ends.iter().copied()).expect_err(because);
            assert!(why.contains(because), "{why}");
        };
        // One writer more than is open: the reader would never see the end of the file.
        refused(
            &[reader, writer],
            "counts 1 readers and 2 writers where descriptors open 1 and 1",
        );
        // One fewer: closing the last two would drop the pipe under the third.
        refused(
            &[reader, writer, writer, writer],
            "where descriptors open 1 and 3",
        );
        refused(&[reader, reader, writer, writer], "open 2 and 2");
        refused(&[], "where descriptors open 0 and 0");
        let elsewhere = PipeEnd {
            id: id + 1,
            write: false,
        };
        refused(
            &[reader, writer, writer, elsewhere],
            "names pipe 1, which does not exist",
        );
    }
}
