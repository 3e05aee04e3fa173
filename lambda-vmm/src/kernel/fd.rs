//! The file descriptor table and the objects descriptors name.

use lambda_core::runtime_api::ConnectionId;

use super::{Errno, vfs};

/// Most descriptors a program may hold (Lambda's limit).
pub const MAX_FDS: usize = 1024;

/// The largest file offset (Linux's `MAX_LFS_FILESIZE`): `lseek` answers `EINVAL` past it,
/// and reads and writes move an offset no further than a file's size.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// An open regular file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OpenFile {
    /// Its normalized path.
    pub path: String,
    /// The file offset.
    pub offset: u64,
    /// Opened for reading.
    pub readable: bool,
    /// Opened for writing.
    pub writable: bool,
    /// `O_APPEND`.
    pub append: bool,
}

/// An open directory, read with `getdents64`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OpenDir {
    /// Its normalized path.
    pub path: String,
    /// Entries already returned.
    pub position: usize,
}

/// A TCP socket on the emulated loopback network.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Socket {
    /// The Runtime API connection, once connected.
    pub connection: Option<ConnectionId>,
    /// The error `SO_ERROR` reports (after a refused non-blocking connect).
    pub pending_error: i32,
    /// Bytes the guest has read so far: with the unread output, the readiness generation
    /// edge-triggered epoll needs.
    pub consumed: u64,
    /// Whether the guest shut down its sending side.
    pub write_shutdown: bool,
    /// Whether the guest shut down its receiving side (reads then see end of file).
    pub read_shutdown: bool,
    /// The local port, assigned at connect.
    pub local_port: u16,
}

/// An eventfd counter.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EventFd {
    /// The counter.
    pub value: u64,
    /// Writes so far (the readiness generation).
    pub writes: u64,
    /// `EFD_SEMAPHORE`.
    pub semaphore: bool,
}

/// One registration in an epoll instance.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Interest {
    /// Requested events (`EPOLLIN`, `EPOLLOUT`, `EPOLLET`, ...).
    pub events: u32,
    /// The user data returned with events.
    pub data: u64,
    /// For edge-triggered reads: the readiness generation last reported.
    pub reported_in: Option<u64>,
    /// For edge-triggered writes: whether writability was reported.
    pub reported_out: bool,
}

/// An epoll instance: descriptor -> registration.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Epoll {
    /// The registrations.
    pub interests: std::collections::BTreeMap<u64, Interest>,
}

/// What a descriptor refers to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Object {
    /// Standard input: the event (one-shot) or empty.
    Stdin,
    /// Standard output: the response (one-shot) or the log.
    Stdout,
    /// Standard error: the log.
    Stderr,
    /// A regular file.
    File(OpenFile),
    /// A directory.
    Dir(OpenDir),
    /// A socket.
    Socket(Socket),
    /// An epoll instance.
    Epoll(Epoll),
    /// An eventfd.
    EventFd(EventFd),
    /// One end of a pipe.
    Pipe(super::pipe::PipeEnd),
    /// One end of a Unix stream socket pair.
    UnixStream(super::unix_socket::UnixStream),
    /// `/dev/null`: reads find the end of the file, writes are taken and dropped.
    Null,
}

/// A descriptor: the object and its flags.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    /// What it refers to.
    pub object: Object,
    /// `O_NONBLOCK`.
    pub nonblocking: bool,
    /// `O_CLOEXEC` as asked for when it was made; [`FdTable::insert`] gives it to the new
    /// descriptor number, which holds `FD_CLOEXEC` from then on (see
    /// [`FdTable::cloexec`]).
    pub cloexec: bool,
}

impl Object {
    /// The pipe ends this object holds open: a pipe's one, a Unix stream's two (fewer once
    /// it is shut down), none for anything else. An open description counts once for each
    /// in its pipes' readers and writers.
    pub fn pipe_ends(&self) -> impl Iterator<Item = super::pipe::PipeEnd> {
        let ends = match self {
            Object::Pipe(end) => [Some(*end), None],
            Object::UnixStream(stream) => [stream.rx, stream.tx],
            _ => [None, None],
        };
        ends.into_iter().flatten()
    }
}

impl Descriptor {
    /// A blocking descriptor for `object`.
    pub fn new(object: Object) -> Descriptor {
        Descriptor {
            object,
            nonblocking: false,
            cloexec: false,
        }
    }
}

/// The descriptor table. Descriptors made by `dup` share one open description (its object
/// and `O_NONBLOCK`), as on Linux; the description goes when its last descriptor closes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FdTable {
    slots: Vec<Option<u64>>,
    descriptions: std::collections::BTreeMap<u64, (Descriptor, usize)>,
    next_description: u64,
    /// The descriptor numbers with `FD_CLOEXEC`: a flag of the number, not of the open
    /// description, so a `dup` of one starts without it, as on Linux.
    #[serde(default)]
    close_on_exec: std::collections::BTreeSet<u64>,
}

impl FdTable {
    /// A table with stdin, stdout and stderr open.
    pub fn with_stdio() -> FdTable {
        let mut table = FdTable {
            slots: Vec::new(),
            descriptions: std::collections::BTreeMap::new(),
            next_description: 0,
            close_on_exec: std::collections::BTreeSet::new(),
        };
        for object in [Object::Stdin, Object::Stdout, Object::Stderr] {
            table
                .insert(Descriptor::new(object))
                .expect("room for stdio");
        }
        table
    }

    fn free_slot(&self, min: usize) -> Result<usize, Errno> {
        (min..MAX_FDS)
            .find(|&fd| self.slots.get(fd).is_none_or(Option::is_none))
            .ok_or(Errno(libc::EMFILE))
    }

    /// Puts `description` at `fd` (below [`MAX_FDS`], as every caller checks).
    fn place(&mut self, fd: usize, description: u64) {
        if fd >= self.slots.len() {
            self.slots.resize(fd.saturating_add(1).min(MAX_FDS), None);
        }
        if let Some(slot) = self.slots.get_mut(fd) {
            *slot = Some(description);
        }
    }

    /// One more descriptor of open description `id`.
    fn share(&mut self, id: u64) {
        if let Some(entry) = self.descriptions.get_mut(&id) {
            entry.1 = entry.1.saturating_add(1);
        }
    }

    fn description_of(&self, fd: u64) -> Result<u64, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i).copied().flatten())
            .ok_or(Errno(libc::EBADF))
    }

    /// Installs `descriptor` at the lowest free number.
    pub fn insert(&mut self, descriptor: Descriptor) -> Result<u64, Errno> {
        let fd = self.free_slot(0)?;
        let id = self.next_description;
        self.next_description = self.next_description.wrapping_add(1);
        let cloexec = descriptor.cloexec;
        self.descriptions.insert(id, (descriptor, 1));
        self.place(fd, id);
        let fd = u64::try_from(fd).unwrap_or(u64::MAX);
        self.set_cloexec(fd, cloexec);
        Ok(fd)
    }

    /// A second descriptor for `fd`'s open description, at the lowest free number >= `min`.
    pub fn dup(&mut self, fd: u64, min: usize) -> Result<u64, Errno> {
        let id = self.description_of(fd)?;
        let new = self.free_slot(min)?;
        self.share(id);
        self.place(new, id);
        let new = u64::try_from(new).unwrap_or(u64::MAX);
        self.close_on_exec.remove(&new);
        Ok(new)
    }

    /// Makes `new` refer to `old`'s open description, closing what `new` held; returns the
    /// description that closing released, if that was its last descriptor.
    pub fn dup_to(&mut self, old: u64, new: u64) -> Result<Option<Descriptor>, Errno> {
        let id = self.description_of(old)?;
        let index = usize::try_from(new)
            .ok()
            .filter(|&i| i < MAX_FDS)
            .ok_or(Errno(libc::EBADF))?;
        let released = self.remove(new).ok().flatten();
        self.share(id);
        self.place(index, id);
        self.close_on_exec.remove(&new);
        Ok(released)
    }

    /// The descriptor `fd`.
    pub fn get(&self, fd: u64) -> Result<&Descriptor, Errno> {
        let id = self.description_of(fd)?;
        self.descriptions
            .get(&id)
            .map(|(descriptor, _)| descriptor)
            .ok_or(Errno(libc::EBADF))
    }

    /// The descriptor `fd`, mutably.
    pub fn get_mut(&mut self, fd: u64) -> Result<&mut Descriptor, Errno> {
        let id = self.description_of(fd)?;
        self.descriptions
            .get_mut(&id)
            .map(|(descriptor, _)| descriptor)
            .ok_or(Errno(libc::EBADF))
    }

    /// Closes `fd`; returns its open description if this was its last descriptor.
    pub fn remove(&mut self, fd: u64) -> Result<Option<Descriptor>, Errno> {
        let id = self.description_of(fd)?;
        if let Some(slot) = usize::try_from(fd).ok().and_then(|i| self.slots.get_mut(i)) {
            *slot = None;
        }
        self.close_on_exec.remove(&fd);
        let Some(entry) = self.descriptions.get_mut(&id) else {
            return Ok(None);
        };
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0 {
            return Ok(self
                .descriptions
                .remove(&id)
                .map(|(descriptor, _)| descriptor));
        }
        Ok(None)
    }

    /// After a rename of `from` to `to` (or their exchange), open files and directories at or
    /// under either path follow it, as Linux descriptors follow their inode.
    pub fn rename_paths(&mut self, from: &str, to: &str, exchange: bool) {
        for path in self.paths_mut() {
            if let Some(renamed) = vfs::renamed(path, from, to, exchange) {
                *path = renamed;
            }
        }
    }

    /// The paths the open file and directory descriptions name, for a change.
    fn paths_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.descriptions
            .values_mut()
            .filter_map(|(descriptor, _)| match &mut descriptor.object {
                Object::File(file) => Some(&mut file.path),
                Object::Dir(dir) => Some(&mut dir.path),
                _ => None,
            })
    }

    /// The paths the open file and directory descriptions name.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.descriptions()
            .filter_map(|descriptor| match &descriptor.object {
                Object::File(file) => Some(file.path.as_str()),
                Object::Dir(dir) => Some(dir.path.as_str()),
                _ => None,
            })
    }

    /// Whether an open file or directory description names `path`.
    pub fn names(&self, path: &str) -> bool {
        self.paths().any(|named| named == path)
    }

    /// Renames `old` to `new` in the open file and directory descriptions naming exactly
    /// `old` (after it was removed while open: `new` is its orphan path).
    pub fn repath(&mut self, old: &str, new: &str) {
        for path in self.paths_mut().filter(|path| *path == old) {
            *path = new.to_string();
        }
    }

    /// The open descriptions, each once however many descriptors share it.
    pub fn descriptions(&self) -> impl Iterator<Item = &Descriptor> {
        self.descriptions.values().map(|(descriptor, _)| descriptor)
    }

    /// Whether `fd` has `FD_CLOEXEC`.
    pub fn cloexec(&self, fd: u64) -> Result<bool, Errno> {
        self.description_of(fd)?;
        Ok(self.close_on_exec.contains(&fd))
    }

    /// Sets or clears `fd`'s `FD_CLOEXEC` (an open descriptor's, as every caller checked).
    pub fn set_cloexec(&mut self, fd: u64, on: bool) {
        if on {
            self.close_on_exec.insert(fd);
        } else {
            self.close_on_exec.remove(&fd);
        }
    }

    /// The descriptor numbers `execve` closes (those with `FD_CLOEXEC`).
    pub fn closed_on_exec(&self) -> Vec<u64> {
        self.close_on_exec.iter().copied().collect()
    }

    /// Checks a table read from a snapshot file against what its own methods could have
    /// made: at most [`MAX_FDS`] descriptors, each naming an open description that counts
    /// exactly the descriptors naming it, open-description ids below the next one handed
    /// out, `FD_CLOEXEC` only on open descriptors, and no open file's offset beyond
    /// [`MAX_OFFSET`]. Says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.slots.len() > MAX_FDS {
            return Err(format!(
                "{} descriptor slots, over {MAX_FDS}",
                self.slots.len()
            ));
        }
        let mut named = std::collections::BTreeMap::<u64, usize>::new();
        for (fd, id) in self.slots.iter().enumerate() {
            let Some(id) = id else { continue };
            if !self.descriptions.contains_key(id) {
                return Err(format!("descriptor {fd} names no open description"));
            }
            let count = named.entry(*id).or_default();
            *count = count.saturating_add(1);
        }
        for (id, (_, count)) in &self.descriptions {
            if named.get(id) != Some(count) {
                return Err(format!(
                    "open description {id} counts {count} descriptors where {} name it",
                    named.get(id).copied().unwrap_or(0)
                ));
            }
            if *id >= self.next_description {
                return Err(format!(
                    "open description {id} has an id not yet handed out"
                ));
            }
        }
        if let Some(offset) = self
            .descriptions()
            .find_map(|descriptor| match &descriptor.object {
                Object::File(file) if file.offset > MAX_OFFSET => Some(file.offset),
                _ => None,
            })
        {
            return Err(format!(
                "an open file's offset {offset:#x} is beyond the largest a file has (2^63 - 1)"
            ));
        }
        if let Some(fd) = self
            .close_on_exec
            .iter()
            .find(|&&fd| self.description_of(fd).is_err())
        {
            return Err(format!(
                "descriptor {fd} is closed but marked close-on-exec"
            ));
        }
        Ok(())
    }

    /// Every open descriptor number.
    pub fn open_fds(&self) -> Vec<u64> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.is_some())
            .map(|(fd, _)| u64::try_from(fd).unwrap_or(u64::MAX))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forged_state::assert_refused;

    #[test]
    fn lowest_free_and_limit() {
        let mut table = FdTable::with_stdio();
        assert_eq!(table.insert(Descriptor::new(Object::Stdin)).unwrap(), 3);
        assert!(table.remove(1).unwrap().is_some());
        assert_eq!(table.insert(Descriptor::new(Object::Stdin)).unwrap(), 1);
        assert_eq!(table.remove(99).unwrap_err(), Errno(libc::EBADF));
        let copy = table.dup(3, 10).unwrap();
        assert_eq!(copy, 10);
        table.get_mut(10).unwrap().nonblocking = true;
        assert!(
            table.get(3).unwrap().nonblocking,
            "dups share the description"
        );
        assert!(table.remove(3).unwrap().is_none());
        assert!(table.remove(10).unwrap().is_some());
        while table.insert(Descriptor::new(Object::Stdin)).is_ok() {}
        assert_eq!(table.open_fds().len(), MAX_FDS);
        assert_eq!(table.get(u64::MAX).unwrap_err(), Errno(libc::EBADF));
    }

    #[test]
    fn tables_its_methods_could_not_make_are_refused() {
        let mut good = FdTable::with_stdio();
        let fd = good.insert(Descriptor::new(Object::Stdin)).unwrap();
        good.dup(fd, 10).unwrap();
        good.set_cloexec(fd, true);
        good.remove(1).unwrap();
        good.check().unwrap();
        let refused = |forge: &dyn Fn(&mut FdTable), because: &str| {
            assert_refused(&good, forge, FdTable::check, because);
        };
        refused(&|table| table.slots.resize(MAX_FDS + 1, None), "slots");
        refused(
            &|table| drop(table.descriptions.remove(&0)),
            "descriptor 0 names no open description",
        );
        refused(
            &|table| table.descriptions.get_mut(&3).unwrap().1 = 1,
            "counts 1 descriptors where 2 name it",
        );
        refused(&|table| table.next_description = 3, "not yet handed out");
        refused(
            &|table| table.set_cloexec(1, true),
            "descriptor 1 is closed",
        );
    }

    #[test]
    fn an_offset_past_the_largest_file_is_refused() {
        let at = |offset| {
            let mut table = FdTable::with_stdio();
            let file = OpenFile {
                path: "/tmp/file".into(),
                offset,
                readable: true,
                writable: true,
                append: false,
            };
            table.insert(Descriptor::new(Object::File(file))).unwrap();
            table.check()
        };
        at(MAX_OFFSET).unwrap();
        let why = at(MAX_OFFSET + 1).unwrap_err();
        assert!(
            why.contains("offset 0x8000000000000000 is beyond the largest a file has"),
            "{why}"
        );
    }
}
