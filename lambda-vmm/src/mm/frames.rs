//! The function's memory as the guest's pages are made of it: 2 MiB chunks, each free,
//! owned whole by one 2 MiB-aligned stretch of the address space (page `i` of the stretch is
//! frame `i` of the chunk, so it can be mapped with one large page), or cut into 4 KiB frames
//! handed out one at a time (scattered small mappings, page tables).
//!
//! The pool holds exactly the function's memory: whatever the guest reserves or commits, it
//! can never be given more frames than that, which is how the host's memory for one
//! environment stays bounded. Everything handed back must already read as zero (the caller
//! discards it), so everything handed out does.

use std::collections::BTreeSet;

use super::host_size;
use super::layout::{CHUNK, PAGE};

/// Frames in a chunk.
const FRAMES_PER_CHUNK: u64 = CHUNK / PAGE;
/// Words of the used-frame bitmap of a chunk.
const BITMAP_WORDS: usize = 8;

/// What one chunk is used for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Chunk {
    Free,
    /// Owned whole by one stretch of the address space.
    Whole,
    /// Cut into frames; bit `i` set when frame `i` is handed out.
    Frames {
        used: [u64; BITMAP_WORDS],
        count: u16,
    },
}

/// A change to how a chunk is used that the host's backing should follow (huge pages for a
/// whole chunk, small ones for frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Became {
    /// The chunk at this guest-physical address is now cut into frames.
    Frames(u64),
}

/// The function's memory, by chunk.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FramePool {
    base: u64,
    /// Frames the last chunk has (a memory size that is not a whole number of chunks).
    last_frames: u64,
    chunks: Vec<Chunk>,
    /// Free chunks, most recently freed last.
    free: Vec<u32>,
    /// Frame chunks with a free frame.
    partial: BTreeSet<u32>,
    /// Bytes handed out (whole chunks and frames).
    in_use: u64,
}

impl FramePool {
    /// A pool of `size` bytes of guest-physical memory from `base`.
    pub fn new(base: u64, size: u64) -> FramePool {
        let whole = size / CHUNK;
        let rest = size % CHUNK / PAGE;
        let count = whole.saturating_add(u64::from(rest > 0));
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        FramePool {
            base,
            last_frames: if rest > 0 { rest } else { FRAMES_PER_CHUNK },
            chunks: vec![Chunk::Free; count as usize],
            // Lowest first out: the pool fills from the bottom.
            free: (0..count).rev().collect(),
            partial: BTreeSet::new(),
            in_use: 0,
        }
    }

    /// Bytes handed out.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Bytes the pool holds in all.
    #[cfg(test)]
    pub fn capacity(&self) -> u64 {
        let whole = self.chunks.len().saturating_sub(1) as u64;
        whole
            .saturating_mul(CHUNK)
            .saturating_add(self.last_frames.saturating_mul(PAGE))
    }

    fn frames_in(&self, chunk: u32) -> u64 {
        if chunk as usize == self.chunks.len().saturating_sub(1) {
            self.last_frames
        } else {
            FRAMES_PER_CHUNK
        }
    }

    fn address(&self, chunk: u32) -> u64 {
        self.base
            .saturating_add(u64::from(chunk).saturating_mul(CHUNK))
    }

    fn index(&self, addr: u64) -> Option<u32> {
        let offset = addr.checked_sub(self.base)?;
        u32::try_from(offset / CHUNK)
            .ok()
            .filter(|&chunk| (chunk as usize) < self.chunks.len())
    }

    /// Takes a whole chunk; its guest-physical address, or `None` when none is free.
    #[cfg(test)]
    pub fn take_chunk(&mut self) -> Option<u64> {
        self.take_chunk_ranked(|_| ())
    }

    /// Takes the free whole chunk that `rank` puts first (the lowest rank; among equals, the
    /// one given back last); its guest-physical address, or `None` when none is free.
    pub fn take_chunk_ranked<R: Ord>(&mut self, rank: impl Fn(u64) -> R) -> Option<u64> {
        let position = self
            .free
            .iter()
            .enumerate()
            .rev()
            .filter(|&(_, &chunk)| self.frames_in(chunk) == FRAMES_PER_CHUNK)
            .min_by_key(|&(_, &chunk)| rank(self.address(chunk)))
            .map(|(position, _)| position)?;
        let chunk = self.free.remove(position);
        self.chunks[chunk as usize] = Chunk::Whole;
        self.in_use = self.in_use.saturating_add(CHUNK);
        Some(self.address(chunk))
    }

    /// Gives back a whole chunk taken with [`FramePool::take_chunk_ranked`] (its memory already
    /// discarded).
    pub fn give_chunk(&mut self, addr: u64) {
        let Some(chunk) = self.index(addr) else {
            return;
        };
        if self.chunks[chunk as usize] == Chunk::Whole {
            self.chunks[chunk as usize] = Chunk::Free;
            self.free.push(chunk);
            self.in_use = self.in_use.saturating_sub(CHUNK);
        }
    }

    /// Takes one frame; its guest-physical address (and the chunk it cut, if it had to cut
    /// one), or `None` when the pool is empty.
    pub fn take_frame(&mut self) -> Option<(u64, Option<Became>)> {
        let mut became = None;
        let chunk = match self.partial.iter().next().copied() {
            Some(chunk) => chunk,
            None => {
                // A short last chunk first (it can never be whole), then the most recently
                // freed chunk.
                let last = u32::try_from(self.chunks.len().saturating_sub(1)).unwrap_or(u32::MAX);
                let chunk = match self.free.iter().position(|&c| c == last) {
                    Some(position) if self.frames_in(last) < FRAMES_PER_CHUNK => {
                        self.free.remove(position)
                    }
                    _ => self.free.pop()?,
                };
                self.chunks[chunk as usize] = Chunk::Frames {
                    used: [0; BITMAP_WORDS],
                    count: 0,
                };
                self.partial.insert(chunk);
                became = Some(Became::Frames(self.address(chunk)));
                chunk
            }
        };
        let frames = self.frames_in(chunk);
        let Chunk::Frames { used, count } = &mut self.chunks[chunk as usize] else {
            unreachable!("partial chunks are frame chunks");
        };
        let frame = (0..frames).find(|&i| used[(i / 64) as usize] & (1 << (i % 64)) == 0)?;
        used[(frame / 64) as usize] |= 1 << (frame % 64);
        *count = count.saturating_add(1);
        if u64::from(*count) == frames {
            self.partial.remove(&chunk);
        }
        self.in_use = self.in_use.saturating_add(PAGE);
        let addr = self
            .address(chunk)
            .saturating_add(frame.saturating_mul(PAGE));
        Some((addr, became))
    }

    /// Gives back one frame taken with [`FramePool::take_frame`] (its memory already
    /// discarded). A chunk whose frames are all back becomes free.
    pub fn give_frame(&mut self, addr: u64) {
        let Some(chunk) = self.index(addr) else {
            return;
        };
        let frame = addr.saturating_sub(self.address(chunk)) / PAGE;
        let Chunk::Frames { used, count } = &mut self.chunks[chunk as usize] else {
            return;
        };
        let (word, bit) = ((frame / 64) as usize, 1u64 << (frame % 64));
        if used[word] & bit == 0 {
            return;
        }
        used[word] &= !bit;
        *count = count.saturating_sub(1);
        self.in_use = self.in_use.saturating_sub(PAGE);
        if *count == 0 {
            self.chunks[chunk as usize] = Chunk::Free;
            self.partial.remove(&chunk);
            self.free.push(chunk);
        } else {
            self.partial.insert(chunk);
        }
    }

    /// Checks that this pool is one [`FramePool::new`] could have made for `size` bytes from
    /// `base` and kept since (a pool read back from a snapshot file, which the methods
    /// above index by): the memory's chunks, each free chunk listed free once and no other,
    /// the frame chunks with a free frame listed partial and no other, each count agreeing
    /// with its bitmap, no frame used past a short last chunk (which is never whole), and
    /// the bytes in use adding up. Says what does not hold.
    pub fn check(&self, base: u64, size: u64) -> Result<(), String> {
        let fresh = FramePool::new(base, size);
        if self.base != fresh.base
            || self.chunks.len() != fresh.chunks.len()
            || self.last_frames != fresh.last_frames
        {
            return Err(format!(
                "is not a pool of {size} bytes at {base:#x}: {} chunks at {:#x}",
                self.chunks.len(),
                self.base
            ));
        }
        let (mut free, mut partial) = (BTreeSet::new(), BTreeSet::new());
        let mut in_use = 0u64;
        for (index, state) in (0u32..).zip(&self.chunks) {
            let frames = self.frames_in(index);
            match state {
                Chunk::Free => {
                    free.insert(index);
                }
                Chunk::Whole if frames == FRAMES_PER_CHUNK => {
                    in_use = in_use.saturating_add(CHUNK);
                }
                Chunk::Whole => return Err(format!("holds its short chunk {index} whole")),
                Chunk::Frames { used, count } => {
                    let set = used.iter().fold(0u64, |n, word| {
                        n.saturating_add(u64::from(word.count_ones()))
                    });
                    let past_end = (frames..FRAMES_PER_CHUNK).any(|frame| {
                        used.get(host_size(frame / 64))
                            .is_some_and(|word| word >> (frame % 64) & 1 != 0)
                    });
                    if set != u64::from(*count) || past_end {
                        return Err(format!(
                            "counts {count} frames of chunk {index}, whose bitmap has {set}"
                        ));
                    }
                    if set < frames {
                        partial.insert(index);
                    }
                    in_use = in_use.saturating_add(set.saturating_mul(PAGE));
                }
            }
        }
        let listed: BTreeSet<u32> = self.free.iter().copied().collect();
        if listed.len() != self.free.len() || listed != free {
            return Err("lists free chunks that are not, or not once".into());
        }
        if self.partial != partial {
            return Err("lists chunks with a free frame that have none, or not all".into());
        }
        if self.in_use != in_use {
            return Err(format!(
                "counts {} bytes in use where its chunks hold {in_use}",
                self.in_use
            ));
        }
        Ok(())
    }

    /// Whether the frame at `addr` is handed out: a used frame of a chunk cut into frames.
    pub fn frame_in_use(&self, addr: u64) -> bool {
        let Some(chunk) = self.index(addr) else {
            return false;
        };
        let Some(Chunk::Frames { used, .. }) = self.chunks.get(chunk as usize) else {
            return false;
        };
        let frame = addr.saturating_sub(self.address(chunk)) / PAGE;
        used.get(host_size(frame / 64))
            .is_some_and(|word| word >> (frame % 64) & 1 != 0)
    }

    /// Whether the frame at `addr` is in use: in a chunk held whole, or a used frame of a
    /// chunk cut into frames. A frame not in use was discarded when it came back, and reads
    /// as zero.
    pub fn holds(&self, addr: u64) -> bool {
        match self
            .index(addr)
            .and_then(|chunk| self.chunks.get(chunk as usize))
        {
            Some(Chunk::Whole) => true,
            Some(Chunk::Frames { .. }) => self.frame_in_use(addr),
            _ => false,
        }
    }

    /// The guest-physical addresses of the chunks held whole.
    pub fn whole_chunks(&self) -> impl Iterator<Item = u64> + '_ {
        (0u32..)
            .zip(&self.chunks)
            .filter(|(_, state)| **state == Chunk::Whole)
            .map(|(chunk, _)| self.address(chunk))
    }

    /// Whether the chunk holding `addr` is cut into frames (else it is whole or free).
    #[cfg(test)]
    pub fn is_frame(&self, addr: u64) -> bool {
        self.index(addr)
            .is_some_and(|chunk| matches!(self.chunks[chunk as usize], Chunk::Frames { .. }))
    }

    /// The guest-physical ranges of chunks in use: where the guest's memory may be resident.
    pub fn used_ranges(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for (chunk, state) in self.chunks.iter().enumerate() {
            if *state == Chunk::Free {
                continue;
            }
            let Ok(chunk) = u32::try_from(chunk) else {
                break;
            };
            let (start, len) = (
                self.address(chunk),
                self.frames_in(chunk).saturating_mul(PAGE),
            );
            match ranges.last_mut() {
                Some((last, last_len)) if last.saturating_add(*last_len) == start => {
                    *last_len = last_len.saturating_add(len);
                }
                _ => ranges.push((start, len)),
            }
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of 129 MiB (a short last chunk) with a whole chunk, frames of two chunks (one
    /// given back whole again) and the short chunk's frames in use.
    fn used_pool() -> FramePool {
        let mut pool = FramePool::new(0, 129 << 20);
        pool.take_chunk().unwrap();
        let frames: Vec<u64> = (0..600).map(|_| pool.take_frame().unwrap().0).collect();
        for &frame in &frames[256..] {
            pool.give_frame(frame);
        }
        pool
    }

    #[test]
    fn a_pool_kept_by_its_methods_passes_its_check_and_a_forged_one_does_not() {
        let pool = used_pool();
        assert_eq!(pool.check(0, 129 << 20), Ok(()));
        assert!(
            pool.frame_in_use(pool.address(64)),
            "the short chunk's first frame"
        );
        assert!(!pool.frame_in_use(0), "a whole chunk holds no frames");
        assert!(pool.check(0, 128 << 20).unwrap_err().contains("not a pool"));
        assert!(
            pool.check(CHUNK, 129 << 20)
                .unwrap_err()
                .contains("not a pool")
        );
        let forged = |forge: &dyn Fn(&mut FramePool)| {
            let mut pool = used_pool();
            forge(&mut pool);
            pool.check(0, 129 << 20).unwrap_err()
        };
        // A free chunk out of range, or listed twice; a whole chunk listed free.
        assert!(forged(&|pool| pool.free.push(1000)).contains("free"));
        assert!(forged(&|pool| pool.free.push(pool.free[0])).contains("free"));
        assert!(forged(&|pool| pool.free.push(0)).contains("free"));
        // A count that is not its bitmap's; a frame past the short chunk's end.
        assert!(
            forged(&|pool| pool.chunks[64] = Chunk::Frames {
                used: [0; 8],
                count: 3
            })
            .contains("bitmap")
        );
        assert!(
            forged(&|pool| {
                let full = Chunk::Frames {
                    used: [u64::MAX; 8],
                    count: 512,
                };
                pool.chunks[64] = full;
            })
            .contains("bitmap")
        );
        // The short chunk whole; a full chunk listed partial; bytes in use off.
        assert!(forged(&|pool| pool.chunks[64] = Chunk::Whole).contains("short chunk"));
        assert!(
            forged(&|pool| {
                pool.partial.insert(0);
            })
            .contains("free frame")
        );
        assert!(forged(&|pool| pool.in_use += PAGE).contains("in use"));
    }

    #[test]
    fn chunks_and_frames_come_from_one_pool() {
        let mut pool = FramePool::new(0, 4 * CHUNK);
        assert_eq!(pool.capacity(), 4 * CHUNK);
        let a = pool.take_chunk().unwrap();
        assert_eq!(a, 0);
        let (frame, became) = pool.take_frame().unwrap();
        assert_eq!(frame, CHUNK);
        assert_eq!(became, Some(Became::Frames(CHUNK)));
        let (second, became) = pool.take_frame().unwrap();
        assert_eq!((second, became), (CHUNK + PAGE, None));
        assert_eq!(pool.in_use(), CHUNK + 2 * PAGE);
        assert!(pool.is_frame(second));
        assert!(!pool.is_frame(a));
        assert_eq!(pool.used_ranges(), vec![(0, 2 * CHUNK)]);
        pool.give_frame(frame);
        pool.give_frame(frame); // twice: ignored
        pool.give_frame(second);
        assert_eq!(pool.in_use(), CHUNK);
        pool.give_chunk(a);
        assert_eq!(pool.in_use(), 0);
        assert!(pool.used_ranges().is_empty());
    }

    #[test]
    fn the_pool_runs_dry() {
        let mut pool = FramePool::new(0, 2 * CHUNK);
        assert!(pool.take_chunk().is_some());
        for _ in 0..FRAMES_PER_CHUNK {
            assert!(pool.take_frame().is_some());
        }
        assert!(pool.take_frame().is_none());
        assert!(pool.take_chunk().is_none());
        assert_eq!(pool.in_use(), pool.capacity());
    }

    #[test]
    fn a_short_last_chunk_only_gives_frames() {
        // 129 MB: 64 whole chunks and half of one.
        let mut pool = FramePool::new(0, 129 << 20);
        assert_eq!(pool.capacity(), 129 << 20);
        let (frame, _) = pool.take_frame().unwrap();
        assert_eq!(frame, 64 * CHUNK);
        let mut whole = 0;
        while pool.take_chunk().is_some() {
            whole += 1;
        }
        assert_eq!(whole, 64);
        for _ in 1..256 {
            assert!(pool.take_frame().is_some());
        }
        assert!(pool.take_frame().is_none());
    }
}
