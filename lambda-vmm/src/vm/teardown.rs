//! Tearing VMs down off the invocation path: closing the fds and unmapping guest memory
//! costs 0.2-1.7 ms, so finished VMs go to a background thread, which makes a few of them new
//! for the next programs instead (`recycle.rs`, 0.3-0.4 ms each) and tears the rest down. A
//! panic tearing one VM down is caught, and the thread goes on with the next.

use std::sync::OnceLock;

use crossbeam_channel::{Sender, bounded, unbounded};

use super::MicroVm;
use crate::sync::catch_panic;

enum Job {
    Drop(Box<MicroVm>),
    Flush(Sender<()>),
    /// Tests: any work, on the teardown thread.
    #[cfg(test)]
    Run(Box<dyn FnOnce() + Send>),
}

fn reaper() -> &'static Sender<Job> {
    static REAPER: OnceLock<Sender<Job>> = OnceLock::new();
    REAPER.get_or_init(|| {
        let (sender, receiver) = unbounded::<Job>();
        std::thread::Builder::new()
            .name("lambda-vmm-teardown".into())
            .spawn(move || {
                for job in receiver {
                    // The VM (or whatever the job held) is gone either way.
                    let _ = catch_panic(|| match job {
                        Job::Drop(vm) => super::recycle::keep_or_drop(vm),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                        #[cfg(test)]
                        Job::Run(work) => work(),
                    });
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

/// Waits until every micro-VM finished so far is torn down or made new for the next program:
/// that happens on a background thread, off the invocation path; benchmarks and leak tests
/// wait for it.
pub fn wait_for_teardown() {
    let (done, finished) = bounded(1);
    if reaper().send(Job::Flush(done)).is_ok() {
        let _ = finished.recv();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_teardown_thread_survives_a_panicking_job() {
        let panicking = Job::Run(Box::new(|| panic!("test: tearing a VM down panics")));
        reaper().send(panicking).expect("the teardown thread runs");
        let (done, finished) = bounded(1);
        reaper()
            .send(Job::Flush(done))
            .expect("the teardown thread still runs");
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the teardown thread took the next job");
        wait_for_teardown();
    }
}
