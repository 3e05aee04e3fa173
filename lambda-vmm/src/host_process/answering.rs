//! The threads of a VM host process that answer the engine's calls.
//!
//! Creates, invocations and snapshot saves each get a thread of their own, so a call never
//! waits behind another (an invocation may run for 15 minutes): a pool that grows to the
//! calls in flight and keeps its threads. Shutdowns all go to one thread, in the order they
//! came. Shutting an idle environment down never waits on its guest, but it does tear the
//! VM down, which takes a millisecond or more; an engine dropping its environments sends
//! hundreds of shutdowns at once, and a thread made for each would map a stack in a process
//! whose every VM's MMU notifier hears of it (`docs/platform.md`, "Many VMs in one process").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use lambda_core::panic_message;

use super::wire::{Reply, ReplyBody, Request, RequestBody, WireError};
use crate::sync::catch_panic;

/// What answers the calls: the host's backend and its way back to the engine.
pub(super) trait Answerer: Send + Sync + 'static {
    /// Answers one request.
    fn answer(&self, request: Request) -> Reply;
    /// Sends `reply` to the engine.
    fn send(&self, reply: &Reply);
}

/// The threads answering calls, and the one answering shutdowns.
pub(super) struct Answering<A: Answerer> {
    answerer: Arc<A>,
    calls: Option<Sender<Request>>,
    waiting: Receiver<Request>,
    /// Threads waiting for a call and not yet promised one.
    idle: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    shutdowns: Option<Sender<Request>>,
    shutting_down: Option<JoinHandle<()>>,
}

impl<A: Answerer> Answering<A> {
    /// Makes the shutdown thread and `first` call threads, idle. Call it before the process
    /// holds any VM, when making a thread is cheap.
    ///
    /// Errors: the host has no thread to give.
    pub(super) fn start(answerer: Arc<A>, first: usize) -> std::io::Result<Answering<A>> {
        let (calls, waiting) = crossbeam_channel::unbounded();
        let (shutdowns, to_shut_down) = crossbeam_channel::unbounded::<Request>();
        let shutting_down = {
            let answerer = Arc::clone(&answerer);
            std::thread::Builder::new()
                .name("lambda-vmm-host-shutdowns".into())
                .spawn(move || {
                    for request in to_shut_down {
                        let reply = answer_contained(&*answerer, request);
                        answerer.send(&reply);
                    }
                })?
        };
        let mut answering = Answering {
            answerer,
            calls: Some(calls),
            waiting,
            idle: Arc::new(AtomicUsize::new(0)),
            threads: Vec::new(),
            shutdowns: Some(shutdowns),
            shutting_down: Some(shutting_down),
        };
        for _ in 0..first {
            answering.add_thread()?;
            answering.idle.fetch_add(1, Ordering::AcqRel);
        }
        Ok(answering)
    }

    /// Makes one more call thread, not counted idle: it is promised to the next call sent.
    fn add_thread(&mut self) -> std::io::Result<()> {
        let (answerer, waiting, idle) = (
            Arc::clone(&self.answerer),
            self.waiting.clone(),
            Arc::clone(&self.idle),
        );
        let thread = std::thread::Builder::new()
            .name("lambda-vmm-host-call".into())
            .spawn(move || {
                for request in waiting {
                    let reply = answer_contained(&*answerer, request);
                    // Idle before the reply leaves: the engine's next call, which may follow
                    // the reply at once, then finds this thread instead of making another.
                    idle.fetch_add(1, Ordering::AcqRel);
                    answerer.send(&reply);
                }
            })?;
        self.threads.push(thread);
        Ok(())
    }

    /// Gives `request` to its thread: a shutdown to the shutdown thread, any other call to
    /// an idle call thread, or to a new one if none is idle.
    ///
    /// Errors: a thread was needed and the host has none to give.
    pub(super) fn hand_over(&mut self, request: Request) -> std::io::Result<()> {
        if matches!(request.body, RequestBody::Shutdown { .. }) {
            if let Some(shutdowns) = &self.shutdowns {
                // The receiving thread lives until `finish`, so this cannot fail.
                let _ = shutdowns.send(request);
            }
            return Ok(());
        }
        let promised = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !promised {
            self.add_thread()?;
        }
        if let Some(calls) = &self.calls {
            // The receiving end lives in `self`, so this cannot fail.
            let _ = calls.send(request);
        }
        Ok(())
    }

    /// How many call threads were made, the first ones included (not the shutdown thread).
    #[cfg(test)]
    fn threads_made(&self) -> usize {
        self.threads.len()
    }

    /// Lets the threads finish the calls they have, and waits for them.
    pub(super) fn finish(mut self) {
        self.calls = None;
        self.shutdowns = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some(thread) = self.shutting_down.take() {
            let _ = thread.join();
        }
    }
}

/// `answerer`'s answer to `request`; a panic (outside the backend, which contains its own)
/// still answers the call, and the thread goes on with the next.
fn answer_contained(answerer: &impl Answerer, request: Request) -> Reply {
    let call = request.call;
    catch_panic(|| answerer.answer(request)).unwrap_or_else(|panic| Reply {
        call,
        body: ReplyBody::Failed(WireError::Failed(format!(
            "the VM host process panicked answering a call: {}",
            panic_message(&*panic)
        ))),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use lambda_core::Invocation;

    use super::*;

    /// Long enough never to be reached when the threads do their work; the tests fail
    /// instead of hanging when they do not.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// Answers each call once the test lets that call go (`release`), telling the test when
    /// it started (`entered`); a call of environment 666 panics.
    struct Gated {
        entered: Sender<u64>,
        gates: Mutex<std::collections::HashMap<u64, Receiver<()>>>,
        replies: Sender<Reply>,
    }

    impl Answerer for Gated {
        fn answer(&self, request: Request) -> Reply {
            let call = request.call;
            if matches!(
                request.body,
                RequestBody::Shutdown { environment: 666 }
                    | RequestBody::Invoke {
                        environment: 666,
                        ..
                    }
            ) {
                panic!("environment 666");
            }
            let gate = self.gates.lock().unwrap().remove(&call);
            self.entered.send(call).unwrap();
            if let Some(gate) = gate {
                gate.recv_timeout(PATIENCE)
                    .expect("the test let the call go");
            }
            Reply {
                call,
                body: ReplyBody::ShutDown,
            }
        }

        fn send(&self, reply: &Reply) {
            self.replies.send(reply.clone()).unwrap();
        }
    }

    struct Harness {
        answering: Answering<Gated>,
        answerer: Arc<Gated>,
        entered: Receiver<u64>,
        replies: Receiver<Reply>,
    }

    impl Harness {
        fn start(first: usize) -> Harness {
            let (entered_tx, entered) = crossbeam_channel::unbounded();
            let (replies_tx, replies) = crossbeam_channel::unbounded();
            let answerer = Arc::new(Gated {
                entered: entered_tx,
                gates: Mutex::new(Default::default()),
                replies: replies_tx,
            });
            let answering = Answering::start(Arc::clone(&answerer), first).unwrap();
            Harness {
                answering,
                answerer,
                entered,
                replies,
            }
        }

        /// Hands over `body` as call `call`, held until the returned sender is dropped.
        fn send_held(&mut self, call: u64, body: RequestBody) -> Sender<()> {
            let (release, gate) = crossbeam_channel::bounded(1);
            self.answerer.gates.lock().unwrap().insert(call, gate);
            self.send(call, body);
            release
        }

        /// Hands over `body` as call `call`, not held.
        fn send(&mut self, call: u64, body: RequestBody) {
            self.answering.hand_over(Request { call, body }).unwrap();
        }

        fn entered(&self) -> u64 {
            self.entered
                .recv_timeout(PATIENCE)
                .expect("a thread took the call")
        }

        fn reply(&self) -> Reply {
            self.replies.recv_timeout(PATIENCE).expect("a reply")
        }
    }

    fn invoke(environment: u64) -> RequestBody {
        RequestBody::Invoke {
            environment,
            invocation: Invocation::new("{}"),
            streamed: false,
        }
    }

    #[test]
    fn a_call_never_waits_behind_another_and_finished_threads_are_kept() {
        let mut harness = Harness::start(1);
        // Three invocations held at once: each is running before any is let go, so each
        // has a thread of its own.
        let held: Vec<_> = (1..=3)
            .map(|call| harness.send_held(call, invoke(call)))
            .collect();
        let mut entered: Vec<_> = (0..3).map(|_| harness.entered()).collect();
        entered.sort_unstable();
        assert_eq!(entered, [1, 2, 3]);
        assert_eq!(harness.answering.threads_made(), 3);
        drop(held);
        for _ in 0..3 {
            harness.reply();
        }
        // The three are idle again: three more calls, one after another, make no thread.
        for call in 4..=6 {
            harness.send(call, invoke(call));
            assert_eq!(harness.entered(), call);
            assert_eq!(harness.reply().call, call);
        }
        assert_eq!(harness.answering.threads_made(), 3);
        harness.answering.finish();
    }

    #[test]
    fn shutdowns_are_answered_in_turn_on_their_own_thread() {
        let mut harness = Harness::start(1);
        // The first shutdown is held; the other nine queue behind it and make no thread.
        let held = harness.send_held(1, RequestBody::Shutdown { environment: 1 });
        assert_eq!(harness.entered(), 1);
        for call in 2..=10 {
            harness.send(call, RequestBody::Shutdown { environment: call });
        }
        // An invocation meanwhile is answered at once, by the idle call thread.
        harness.send(11, invoke(11));
        assert_eq!(harness.entered(), 11);
        assert_eq!(harness.reply().call, 11);
        assert_eq!(harness.answering.threads_made(), 1);
        drop(held);
        let order: Vec<_> = (1..=10).map(|_| harness.reply().call).collect();
        assert_eq!(order, (1..=10).collect::<Vec<_>>());
        assert_eq!(harness.answering.threads_made(), 1);
        harness.answering.finish();
    }

    #[test]
    fn a_panic_answering_a_call_is_a_failed_reply_and_the_thread_goes_on() {
        let mut harness = Harness::start(1);
        for (call, body) in [
            (1, invoke(666)),
            (2, RequestBody::Shutdown { environment: 666 }),
        ] {
            harness.send(call, body);
            let reply = harness.reply();
            assert_eq!(reply.call, call);
            assert!(
                matches!(&reply.body, ReplyBody::Failed(WireError::Failed(message))
                    if message.contains("panicked") && message.contains("environment 666")),
                "{reply:?}"
            );
        }
        harness.send(3, invoke(3));
        assert_eq!(harness.entered(), 3);
        assert_eq!(harness.reply().call, 3);
        harness.send(4, RequestBody::Shutdown { environment: 4 });
        assert_eq!(harness.entered(), 4);
        assert_eq!(harness.reply().call, 4);
        assert_eq!(harness.answering.threads_made(), 1);
        harness.answering.finish();
    }
}
