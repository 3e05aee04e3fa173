//! Spare VMs: blank micro-VMs (KVM VM, the vCPUs the memory size buys, memory and kernel
//! structures, no program) made ahead of time by a background thread, so a cold start can skip
//! the ~1 ms of VM creation and a threaded program the ~0.2 ms of each further vCPU.
//! A spare is new, or a VM that ran made as good as new (`recycle.rs`: fresh memory, every
//! shadow page table dropped, vCPUs reset), so handing it to any function leaks nothing. A panic
//! making one spare is caught: that size is given up like a size KVM refuses, and the thread
//! goes on stocking the others.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::MicroVm;
use crate::sync::{catch_panic, lock, wait};

#[derive(Default)]
struct Stock {
    /// Spare VMs by memory size in bytes.
    ready: BTreeMap<u64, Vec<MicroVm>>,
    stopping: bool,
}

struct Shared {
    stock: Mutex<Stock>,
    /// Signalled when a spare is taken (the refiller wakes) or the pool stops.
    wanted: Condvar,
    /// Signalled when the refiller has made a spare or given up on a size.
    stocked: Condvar,
    per_size: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Tests: making a spare of this size panics (0: none does).
    #[cfg(test)]
    panic_on_size: AtomicU64,
}

/// A stock of spare VMs per memory size, refilled by a background thread. Sizes are stocked
/// once asked for; dropping the pool stops the thread and tears the spares down.
pub struct SparePool {
    shared: Arc<Shared>,
    refiller: Option<JoinHandle<()>>,
}

impl SparePool {
    /// A pool keeping `per_size` spare VMs of every memory size it has been asked for.
    pub fn new(per_size: usize) -> SparePool {
        let shared = Arc::new(Shared {
            stock: Mutex::new(Stock::default()),
            wanted: Condvar::new(),
            stocked: Condvar::new(),
            per_size,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            #[cfg(test)]
            panic_on_size: AtomicU64::new(0),
        });
        let worker = Arc::clone(&shared);
        let refiller = std::thread::Builder::new()
            .name("lambda-vmm-spares".into())
            .spawn(move || refill(&worker))
            .expect("spawn the spare VM thread");
        SparePool {
            shared,
            refiller: Some(refiller),
        }
    }

    /// A spare VM of `memory_bytes`, if one is ready; either way the size is (re)stocked.
    pub fn take(&self, memory_bytes: u64) -> Option<Box<MicroVm>> {
        let mut stock = lock(&self.shared.stock);
        let spare = stock
            .ready
            .entry(memory_bytes)
            .or_default()
            .pop()
            .map(Box::new);
        drop(stock);
        self.shared.wanted.notify_one();
        let counter = if spare.is_some() {
            &self.shared.hits
        } else {
            &self.shared.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        spare
    }

    /// How many spares of `memory_bytes` are ready now.
    pub fn ready(&self, memory_bytes: u64) -> usize {
        let stock = lock(&self.shared.stock);
        stock.ready.get(&memory_bytes).map_or(0, Vec::len)
    }

    /// Blocks until `per_size` spares of `memory_bytes` are ready, or the refiller gave up
    /// on that size (KVM refused to make one), or the pool stops. Returns how many are ready.
    /// Asks for the size to be stocked if nothing asked for it yet.
    pub fn wait_stocked(&self, memory_bytes: u64) -> usize {
        let mut stock = lock(&self.shared.stock);
        stock.ready.entry(memory_bytes).or_default();
        self.shared.wanted.notify_one();
        loop {
            match stock.ready.get(&memory_bytes) {
                Some(spares) if spares.len() < self.shared.per_size && !stock.stopping => {}
                other => return other.map_or(0, Vec::len),
            }
            stock = wait(&self.shared.stocked, stock);
        }
    }

    /// How many takes found a spare, and how many did not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.shared.hits.load(Ordering::Relaxed),
            self.shared.misses.load(Ordering::Relaxed),
        )
    }
}

/// The refill thread: makes VMs for any size below its target, one at a time, outside the
/// lock.
fn refill(shared: &Shared) {
    let mut stock = lock(&shared.stock);
    loop {
        if stock.stopping {
            return;
        }
        let short = stock
            .ready
            .iter()
            .find(|(_, spares)| spares.len() < shared.per_size)
            .map(|(&size, _)| size);
        match short {
            Some(size) => {
                drop(stock);
                // A panic is caught outside the lock, so the lock is not poisoned.
                let made = catch_panic(|| make_spare(shared, size)).ok().flatten();
                stock = lock(&shared.stock);
                match made {
                    Some(vm) => stock.ready.entry(size).or_default().push(vm),
                    // KVM refused (out of memory or fds), or making the VM panicked: stop
                    // stocking that size rather than spinning; takes of it fall back to making
                    // a VM on the spot.
                    None => {
                        stock.ready.remove(&size);
                    }
                }
                shared.stocked.notify_all();
            }
            None => {
                stock = wait(&shared.wanted, stock);
            }
        }
    }
}

/// One spare VM of `size` bytes, if KVM makes one.
fn make_spare(shared: &Shared, size: u64) -> Option<MicroVm> {
    #[cfg(test)]
    if shared.panic_on_size.load(Ordering::Relaxed) == size {
        panic!("test: making a spare VM of {size} bytes panics");
    }
    #[cfg(not(test))]
    let _ = shared;
    let mut vm = match super::recycle::take(size) {
        Some(renewed) => *renewed,
        None => MicroVm::new(size).ok()?,
    };
    // Its first vCPU comes set up for ring 3 too (what every program needs): a restore from
    // a snapshot then sets no special register on the invocation's path.
    vm.vcpus.first_mut()?.start(0, 0).ok()?;
    // The vCPUs a function of this size may run at once come made, off the invocation's
    // path (about 0.2 ms each); a program that never runs two threads at once leaves them
    // idle, which costs no CPU.
    let mb = u32::try_from(size >> 20).unwrap_or(u32::MAX);
    let vcpus = lambda_core::limits::vcpus_for_memory_mb(mb) as usize;
    for slot in vm.vcpus.len()..vcpus.min(super::layout::MAX_VCPUS) {
        let vcpu = vm.add_vcpu(slot).ok()?;
        vm.vcpus.push(vcpu);
    }
    Some(vm)
}

impl Drop for SparePool {
    fn drop(&mut self) {
        let mut stock = lock(&self.shared.stock);
        stock.stopping = true;
        stock.ready.clear();
        drop(stock);
        self.shared.wanted.notify_all();
        self.shared.stocked.notify_all();
        if let Some(refiller) = self.refiller.take() {
            let _ = refiller.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `pool.wait_stocked(size)`, failing the test instead of hanging when the refiller died.
    fn stocked(pool: &Arc<SparePool>, size: u64) -> usize {
        let (answer, answered) = crossbeam_channel::bounded(1);
        let pool = Arc::clone(pool);
        std::thread::spawn(move || answer.send(pool.wait_stocked(size)));
        answered
            .recv_timeout(Duration::from_secs(60))
            .expect("the refill thread answered")
    }

    #[test]
    fn a_panic_making_one_size_gives_it_up_and_the_others_are_still_stocked() {
        let pool = Arc::new(SparePool::new(1));
        let (bad, good) = (130 << 20, 128 << 20);
        pool.shared.panic_on_size.store(bad, Ordering::Relaxed);
        assert_eq!(stocked(&pool, bad), 0, "the panicking size is given up");
        assert_eq!(pool.ready(bad), 0);
        // The thread survived: it stocks another size (when KVM can make VMs here at all).
        let expected = usize::from(crate::kvm_available().is_ok());
        assert_eq!(stocked(&pool, good), expected);
        // And a take of the given-up size asks for it again: it panics again, and is given
        // up again, without the thread stopping.
        assert!(pool.take(bad).is_none());
        assert_eq!(stocked(&pool, bad), 0);
        assert_eq!(stocked(&pool, good), expected);
        drop(pool);
    }
}
