//! Tearing VMs down off the invocation path: closing the fds and unmapping guest memory
//! costs ~0.4 ms (more for big memories), so finished VMs go to a background thread.

use std::sync::OnceLock;

use crossbeam_channel::{Sender, bounded, unbounded};

use super::MicroVm;

enum Job {
    Drop(Box<MicroVm>),
    Flush(Sender<()>),
}

fn reaper() -> &'static Sender<Job> {
    static REAPER: OnceLock<Sender<Job>> = OnceLock::new();
    REAPER.get_or_init(|| {
        let (sender, receiver) = unbounded::<Job>();
        std::thread::Builder::new()
            .name("lambda-vmm-teardown".into())
            .spawn(move || {
                for job in receiver {
                    match job {
                        Job::Drop(vm) => drop(vm),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .expect("spawn the VM teardown thread");
        sender
    })
}

/// Hands `vm` to the teardown thread.
pub fn dispose(vm: Box<MicroVm>) {
    if let Err(error) = reaper().send(Job::Drop(vm)) {
        // The thread is gone (only at process exit): tear down here instead.
        drop(error.into_inner());
    }
}

/// Waits until every micro-VM finished so far is torn down: VMs are torn down on a
/// background thread, off the invocation path; benchmarks and leak tests wait for it.
pub fn wait_for_teardown() {
    let (done, finished) = bounded(1);
    if reaper().send(Job::Flush(done)).is_ok() {
        let _ = finished.recv();
    }
}
