//! The engine's handle on one VM host process: starting it, sending it requests, and a
//! thread that reads its replies and hands each to the call waiting for it.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lambda_core::EnvironmentError;

use super::HostProcessError;
use super::wire::{
    Hello, HostOptions, PROTOCOL, Reply, ReplyBody, Request, RequestBody, read_message,
    write_message,
};
use crate::sync::lock;

/// How long a new host process may take to say it is ready (it opens `/dev/kvm` and starts
/// a few threads) before it is taken to be something else and killed.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// What each pipe to and from a host process is asked to hold: `/proc/sys/fs/pipe-max-size`'s
/// default, the most an unprivileged process may ask for.
const PIPE_BYTES: usize = 1 << 20;

/// How long a host process told to stop may take to shut its environments down and exit
/// before it is killed (5,000 environments over 16 processes took about 4 s).
const STOP_PATIENCE: Duration = Duration::from_secs(60);

/// One running VM host process.
pub(crate) struct HostProcess {
    /// The process's id.
    pid: u32,
    /// Its standard input: requests, one frame at a time.
    requests: Mutex<Option<BufWriter<ChildStdin>>>,
    /// The calls waiting for replies, and why none will come once the process is gone.
    calls: Arc<Mutex<Calls>>,
    /// The process, reaped by whoever sees it end first.
    child: Arc<Mutex<Child>>,
    next_call: AtomicU64,
    /// Environments made in it and not yet shut down.
    pub environments: AtomicUsize,
}

/// The calls in flight of one host process.
#[derive(Default)]
struct Calls {
    waiting: HashMap<u64, Sender<ReplyBody>>,
    /// Set once the host process's replies ended: what happened to it.
    gone: Option<String>,
}

impl HostProcess {
    /// Starts `program` as a VM host with `options`, and waits for it to say it is ready.
    pub fn start(program: &Path, options: &HostOptions) -> Result<HostProcess, HostProcessError> {
        let start_error = |source| HostProcessError::Start {
            program: program.to_path_buf(),
            source,
        };
        let mut child = Command::new(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(start_error)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HostProcessError::Protocol {
                program: program.to_path_buf(),
                detail: "its pipes were not made".into(),
            });
        };
        // A payload or response of megabytes crosses a pipe of the default 64 KiB in a
        // hand-off between the two processes per 64 KiB; a larger pipe takes fewer. Best
        // effort: a user over the system's pipe limits keeps the default.
        for pipe in [stdin.as_fd(), stdout.as_fd()] {
            let _ = crate::host::grow_pipe(&pipe, PIPE_BYTES);
        }
        let mut requests = BufWriter::new(stdin);
        let mut replies = BufReader::new(stdout);
        let calls = Arc::new(Mutex::new(Calls::default()));
        let child = Arc::new(Mutex::new(child));
        let stop = |detail: String| {
            let mut child = lock(&child);
            let _ = child.kill();
            let status = child
                .wait()
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            HostProcessError::Protocol {
                program: program.to_path_buf(),
                detail: format!("{detail} ({status})"),
            }
        };
        if let Err(error) = write_message(&mut requests, options) {
            return Err(stop(format!(
                "it did not take its options ({error}); is it a VM host \
                 (`lambda_vmm::host_process::serve_stdio`)?"
            )));
        }
        // The reply thread reads the hello first and hands it over here, so a program that
        // never answers cannot hold this call past START_PATIENCE.
        let (hello_sender, hello) = crossbeam_channel::bounded(1);
        let reader = {
            let (calls, child) = (Arc::clone(&calls), Arc::clone(&child));
            move || {
                let said = read_message::<Hello>(&mut replies);
                let ready = matches!(
                    said,
                    Ok(Some(Hello::Ready {
                        protocol: PROTOCOL,
                        ..
                    }))
                );
                let _ = hello_sender.send(said);
                if ready {
                    read_replies(replies, &calls, &child);
                }
            }
        };
        if let Err(error) = std::thread::Builder::new()
            .name("lambda-vmm-host-replies".into())
            .spawn(reader)
        {
            let _ = stop(String::new());
            return Err(start_error(error));
        }
        let pid = match hello.recv_timeout(START_PATIENCE) {
            Ok(Ok(Some(Hello::Ready {
                protocol: PROTOCOL,
                pid,
            }))) => pid,
            Ok(Ok(Some(Hello::Ready { protocol, .. }))) => {
                return Err(stop(format!(
                    "it speaks protocol {protocol:#x} where this engine speaks {PROTOCOL:#x}: \
                     build it from the same lambda-vmm as the engine"
                )));
            }
            Ok(Ok(Some(Hello::Unavailable(why)))) => {
                let _ = lock(&child).wait();
                return Err(HostProcessError::Unavailable(why));
            }
            Ok(Ok(None) | Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                return Err(stop(
                    "it ended before saying it was ready; is it a VM host \
                     (`lambda_vmm::host_process::serve_stdio`)?"
                        .into(),
                ));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(stop(format!(
                    "it did not say it was ready within {} s, so it was killed",
                    START_PATIENCE.as_secs()
                )));
            }
        };
        Ok(HostProcess {
            pid,
            requests: Mutex::new(Some(requests)),
            calls,
            child,
            next_call: AtomicU64::new(1),
            environments: AtomicUsize::new(0),
        })
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process's replies ended (it exited, was killed, or broke the protocol).
    pub fn is_gone(&self) -> bool {
        lock(&self.calls).gone.is_some()
    }

    /// Sends `body` and returns where its replies will arrive: the channel closes after the
    /// last one, or when the process goes away (then [`gone`](Self::gone) says why).
    pub fn call(&self, body: RequestBody) -> Result<Receiver<ReplyBody>, String> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = crossbeam_channel::unbounded();
        {
            let mut calls = lock(&self.calls);
            if let Some(gone) = &calls.gone {
                return Err(gone.clone());
            }
            calls.waiting.insert(call, sender);
        }
        let sent = match &mut *lock(&self.requests) {
            Some(requests) => write_message(requests, &Request { call, body }),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if let Err(error) = sent {
            lock(&self.calls).waiting.remove(&call);
            return Err(self
                .gone()
                .unwrap_or_else(|| format!("writing to VM host process {}: {error}", self.pid)));
        }
        Ok(receiver)
    }

    /// Sends `body`, a call answered by one reply, and waits up to `patience` from then for
    /// it ([`next_reply`](Self::next_reply); `what` names the call in errors).
    pub fn request(
        &self,
        body: RequestBody,
        patience: Duration,
        what: &str,
    ) -> Result<ReplyBody, EnvironmentError> {
        let replies = self.call(body).map_err(EnvironmentError::failed)?;
        self.next_reply(&replies, Instant::now() + patience, what)
    }

    /// Why the process's replies ended, once they have.
    pub fn gone(&self) -> Option<String> {
        lock(&self.calls).gone.clone()
    }

    /// The next reply on `replies`, a call's channel: `what` names the call in errors. A
    /// process that sends none by `deadline` is broken (the VMM inside keeps the function's
    /// own time limits), so it is abandoned and the call fails, as every other call on it
    /// then does.
    pub fn next_reply(
        &self,
        replies: &Receiver<ReplyBody>,
        deadline: Instant,
        what: &str,
    ) -> Result<ReplyBody, EnvironmentError> {
        match replies.recv_deadline(deadline) {
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => {
                let why = format!(
                    "VM host process {} did not answer {what} in time, so it was killed",
                    self.pid
                );
                self.abandon(why.clone());
                Err(EnvironmentError::failed(why))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(EnvironmentError::failed(self.gone().unwrap_or_else(|| {
                    format!("VM host process {} stopped answering", self.pid)
                })))
            }
        }
    }

    /// The error for a call answered with a reply that does not answer `what` (a create
    /// answered as an invocation, say): the process broke the protocol.
    pub fn unexpected_reply(&self, what: &str) -> EnvironmentError {
        EnvironmentError::failed(format!(
            "VM host process {} answered {what} with something else",
            self.pid
        ))
    }

    /// Gives up on the process, for `why`: records it, kills the process, and lets the reply
    /// thread end every call (they fail with `why`).
    pub fn abandon(&self, why: String) {
        lock(&self.calls).gone.get_or_insert(why);
        let _ = lock(&self.child).kill();
    }
}

impl Drop for HostProcess {
    /// Closes the process's standard input, which tells it to shut its environments down
    /// and exit, and waits for it: up to [`STOP_PATIENCE`], then kills it.
    fn drop(&mut self) {
        drop(lock(&self.requests).take());
        let deadline = Instant::now() + STOP_PATIENCE;
        let mut child = lock(&self.child);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Reads the host's replies until they end, handing each to its call; then records why they
/// ended and closes every waiting call's channel.
fn read_replies(
    mut replies: BufReader<std::process::ChildStdout>,
    calls: &Mutex<Calls>,
    child: &Mutex<Child>,
) {
    let ended = loop {
        match read_message::<Reply>(&mut replies) {
            Ok(Some(Reply { call, body })) => {
                let mut calls = lock(calls);
                let last = !matches!(body, ReplyBody::Chunk(_));
                let sender = if last {
                    calls.waiting.remove(&call)
                } else {
                    calls.waiting.get(&call).cloned()
                };
                drop(calls);
                if let Some(sender) = sender {
                    let _ = sender.send(body);
                }
            }
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    let (status, pid) = {
        let mut child = lock(child);
        if ended.is_some() {
            let _ = child.kill();
        }
        (child.wait(), child.id())
    };
    let why = match (ended, status) {
        (Some(error), _) => format!("VM host process {pid} broke the protocol: {error}"),
        (None, Ok(status)) => format!("VM host process {pid} ended ({status})"),
        (None, Err(error)) => format!("VM host process {pid} ended (cannot reap it: {error})"),
    };
    let mut calls = lock(calls);
    calls.gone.get_or_insert(why);
    calls.waiting.clear();
}
