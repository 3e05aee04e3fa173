//! The host process's side: a `MicroVmBackend` serving the engine's requests from standard
//! input, each on a thread of its own, with the replies written to what was standard output.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

use lambda_core::{Backend, ExecutionEnvironment, ResponseSink, ResponseStream, panic_message};

use super::wire::{
    Hello, HostOptions, Reply, ReplyBody, Request, RequestBody, WireError, read_message,
    write_message,
};
use crate::backend::MicroVmBackend;
use crate::sync::lock;

/// Runs this process as a VM host for an engine's `HostProcessBackend`, until the engine
/// closes standard input; then shuts every environment down and returns.
///
/// Call it from the `main` of a program of its own (this crate's `lambda-vmm-host` binary is
/// one): it takes standard output for the protocol and points descriptor
/// 1 at standard error, so what the process prints cannot corrupt the replies.
///
/// Errors: standard output cannot be taken, or a pipe to the engine failed (the engine is
/// gone or sent something that is not a request).
pub fn serve_stdio() -> io::Result<()> {
    let output = crate::host::take_stdout()?;
    serve(io::stdin().lock(), output)
}

/// Serves requests read from `input`, writing the replies to `output`: the protocol of
/// [`serve_stdio`] over any pair of streams.
pub fn serve(input: impl Read, output: impl Write + Send + 'static) -> io::Result<()> {
    let mut input = BufReader::new(input);
    let output: Replies = Arc::new(Mutex::new(Box::new(BufWriter::new(output))));
    let Some(options) = read_message::<HostOptions>(&mut input)? else {
        return Ok(());
    };
    let backend = match MicroVmBackend::new() {
        Ok(backend) => backend
            .with_spare_vms(options.spare_vms)
            .with_restored_ahead(options.restored_ahead),
        Err(error) => {
            write_message(&mut *lock(&output), &Hello::Unavailable(error.to_string()))?;
            return Ok(());
        }
    };
    write_message(
        &mut *lock(&output),
        &Hello::Ready {
            pid: std::process::id(),
        },
    )?;
    let host = Arc::new(Host {
        backend,
        environments: Mutex::new(Environments::default()),
        output,
    });
    let mut calls = Vec::new();
    let ended = loop {
        match read_message::<Request>(&mut input) {
            Ok(Some(request)) => {
                let host = Arc::clone(&host);
                let spawned = std::thread::Builder::new()
                    .name("lambda-vmm-host-call".into())
                    .spawn(move || host.answer(request));
                match spawned {
                    Ok(call) => calls.push(call),
                    Err(error) => break Err(error),
                }
                calls.retain(|call| !call.is_finished());
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    for call in calls {
        let _ = call.join();
    }
    let left: Vec<_> = lock(&host.environments).idle.drain().collect();
    for (_, environment) in left {
        environment.shutdown();
    }
    crate::vm::teardown::wait_for_teardown();
    ended
}

/// Where replies go; one writer at a time, each reply one whole frame.
type Replies = Arc<Mutex<Box<dyn Write + Send>>>;

/// The environments made here, by number.
#[derive(Default)]
struct Environments {
    /// The last number given.
    last: u64,
    /// The environments not running an invocation now.
    idle: HashMap<u64, Box<dyn ExecutionEnvironment>>,
}

/// The host's state, shared by the threads answering calls.
struct Host {
    backend: MicroVmBackend,
    environments: Mutex<Environments>,
    output: Replies,
}

impl Host {
    /// Answers one request; a reply that cannot be written means the engine is gone, which
    /// the reading loop finds out by itself.
    fn answer(&self, request: Request) {
        let call = request.call;
        let body = match request.body {
            RequestBody::Create(config) => self.create(&config),
            RequestBody::Invoke {
                environment,
                invocation,
                streamed,
            } => self.invoke(call, environment, invocation, streamed),
            RequestBody::Shutdown { environment } => self.shutdown(environment),
        };
        let _ = write_message(&mut *lock(&self.output), &Reply { call, body });
    }

    fn create(&self, config: &lambda_core::FunctionConfig) -> ReplyBody {
        match self.backend.create(config) {
            Ok(environment) => {
                let init_duration = environment.init_duration();
                let start = environment.start();
                let fresh_per_invocation = environment.fresh_per_invocation();
                let mut environments = lock(&self.environments);
                environments.last += 1;
                let number = environments.last;
                environments.idle.insert(number, environment);
                ReplyBody::Created {
                    environment: number,
                    init_duration,
                    start,
                    fresh_per_invocation,
                }
            }
            Err(error) => ReplyBody::Failed(error.into()),
        }
    }

    fn invoke(
        &self,
        call: u64,
        number: u64,
        mut invocation: lambda_core::Invocation,
        streamed: bool,
    ) -> ReplyBody {
        let Some(mut environment) = lock(&self.environments).idle.remove(&number) else {
            return no_such_environment(number);
        };
        if streamed {
            invocation.response_stream = Some(ResponseStream::new(ChunkSink {
                call,
                output: Arc::clone(&self.output),
            }));
        }
        // The backend contains its own panics; this catches one of the code around it, so a
        // bug here fails one invocation rather than the host.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            environment.invoke(invocation)
        }));
        match ran {
            Ok(Ok(result)) => {
                lock(&self.environments).idle.insert(number, environment);
                ReplyBody::Invoked(result)
            }
            Ok(Err(error)) => {
                // Broken: it must not be used again.
                environment.shutdown();
                ReplyBody::Failed(error.into())
            }
            Err(panic) => ReplyBody::Failed(WireError::Failed(format!(
                "the VM host process panicked during invoke: {}",
                panic_message(&*panic)
            ))),
        }
    }

    fn shutdown(&self, number: u64) -> ReplyBody {
        match lock(&self.environments).idle.remove(&number) {
            Some(environment) => {
                environment.shutdown();
                ReplyBody::ShutDown
            }
            None => no_such_environment(number),
        }
    }
}

/// The answer for an environment number the host does not hold idle: never made, shut down,
/// broken by an earlier invocation, or running one now.
fn no_such_environment(number: u64) -> ReplyBody {
    ReplyBody::Failed(WireError::Failed(format!(
        "the VM host process holds no idle environment {number} (shut down, broken by an \
         earlier invocation, or running one now)"
    )))
}

/// Sends the pieces of a streamed response to the engine as they come.
struct ChunkSink {
    call: u64,
    output: Replies,
}

impl ResponseSink for ChunkSink {
    fn write(&self, chunk: &[u8]) -> bool {
        let reply = Reply {
            call: self.call,
            body: ReplyBody::Chunk(chunk.to_vec()),
        };
        write_message(&mut *lock(&self.output), &reply).is_ok()
    }
}
