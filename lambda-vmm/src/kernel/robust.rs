//! Robust futex lists: each thread may register the head of a list of the robust mutexes it
//! holds (`set_robust_list`, which glibc does for every thread). When the thread exits, the
//! kernel walks the list and marks each mutex it still owns `FUTEX_OWNER_DIED`, waking one
//! waiter, so a `pthread_mutex_lock` elsewhere returns `EOWNERDEAD` instead of waiting
//! forever. The walk reads guest memory through the checked accessor and stops at the first
//! bad pointer, after Linux's limit of entries, or back at the head.

use super::{Errno, Kernel, SysResult};
use crate::mm::GuestMemory;

/// `sizeof(struct robust_list_head)`: the list pointer, the futex offset, the pending entry.
const HEAD_LEN: u64 = 24;
/// Most entries walked (Linux's `ROBUST_LIST_LIMIT`), so a cyclic list ends.
const LIST_LIMIT: usize = 2048;
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

impl Kernel {
    /// `set_robust_list(head, len)`.
    pub(super) fn set_robust_list(&mut self, head: u64, len: u64) -> SysResult {
        if len != HEAD_LEN {
            return Err(Errno(libc::EINVAL));
        }
        let current = self.threads.current();
        if let Some(thread) = self.threads.get_mut(current) {
            thread.robust_list = head;
        }
        Ok(0)
    }

    /// `get_robust_list(pid, head_ptr, len_ptr)`.
    pub(super) fn get_robust_list(
        &mut self,
        memory: &GuestMemory,
        pid: u64,
        head_ptr: u64,
        len_ptr: u64,
    ) -> SysResult {
        let tid = match u32::try_from(pid) {
            Ok(0) => self.threads.current(),
            Ok(tid) if self.threads.contains(tid) => tid,
            _ => return Err(Errno(libc::ESRCH)),
        };
        let head = self.threads.get(tid).map_or(0, |thread| thread.robust_list);
        memory.write_obj(head_ptr, head)?;
        memory.write_obj(len_ptr, HEAD_LEN)?;
        Ok(0)
    }

    /// Releases the robust mutexes thread `tid`, exiting, still owns (see the module).
    pub(super) fn release_robust_list(&mut self, memory: &GuestMemory, tid: u32, head: u64) {
        if head == 0 {
            return;
        }
        let Ok([first, offset, pending]) = memory.read_obj::<[u64; 3]>(head) else {
            return;
        };
        let offset = i64::from_le_bytes(offset.to_le_bytes());
        let mut entry = first;
        for _ in 0..LIST_LIMIT {
            if entry == head {
                break;
            }
            // The next pointer first: releasing the mutex may let its memory be reused.
            let Ok(next) = memory.read_obj::<u64>(entry & !1) else {
                break;
            };
            if entry != pending {
                self.owner_died(memory, entry & !1, offset, tid);
            }
            entry = next;
        }
        if pending != 0 {
            self.owner_died(memory, pending & !1, offset, tid);
        }
    }

    /// Marks the futex word of one list entry `FUTEX_OWNER_DIED` if `tid` owns it, waking a
    /// waiter if it has any.
    fn owner_died(&mut self, memory: &GuestMemory, entry: u64, offset: i64, tid: u32) {
        let Some(word) = entry.checked_add_signed(offset) else {
            return;
        };
        let Ok(value) = memory.read_obj::<u32>(word) else {
            return;
        };
        if value & FUTEX_TID_MASK != tid {
            return;
        }
        let released = (value & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        if memory.write_obj(word, released).is_ok() && value & FUTEX_WAITERS != 0 {
            self.futex_wake_all_bits(word, 1);
        }
    }
}
