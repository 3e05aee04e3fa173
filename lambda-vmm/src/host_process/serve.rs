//! The host process's side: a `MicroVmBackend` serving the engine's requests from standard
//! input, each call answered on a thread of its own (`answering.rs`), with the replies
//! written to what was standard output.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use lambda_core::{Backend, ExecutionEnvironment, FunctionConfig, ResponseSink, ResponseStream};

use super::answering::{Answerer, Answering};
use super::wire::{
    Hello, HostOptions, PROTOCOL, Reply, ReplyBody, Request, RequestBody, WireError, read_message,
    write_message,
};
use crate::backend::MicroVmBackend;
use crate::sync::lock;

/// Runs this process as a VM host for an engine's `HostProcessBackend`, until the engine
/// closes standard input; then shuts every environment down and returns.
///
/// Call it from the `main` of a program of its own (this crate's `lambda-vmm-host` binary is
/// one): it takes standard output for the protocol and points descriptor 1 at standard
/// error, so what the process prints cannot corrupt the replies.
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
            .with_restored_ahead(options.restored_ahead)
            .with_lean_restores(options.lean_restores),
        Err(error) => {
            write_message(&mut *lock(&output), &Hello::Unavailable(error.to_string()))?;
            return Ok(());
        }
    };
    write_message(
        &mut *lock(&output),
        &Hello::Ready {
            protocol: PROTOCOL,
            pid: std::process::id(),
        },
    )?;
    let host = Arc::new(Host {
        backend,
        environments: Mutex::new(Environments::default()),
        output,
        loading: Mutex::new(()),
    });
    let mut answering = Answering::start(Arc::clone(&host), FIRST_ANSWERING_THREADS)?;
    let ended = loop {
        match read_message::<Request>(&mut input) {
            Ok(Some(request)) => {
                if let Err(error) = answering.hand_over(request) {
                    break Err(error);
                }
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    answering.finish();
    let left: Vec<_> = lock(&host.environments).idle.drain().collect();
    for (_, environment) in left {
        environment.shutdown();
    }
    crate::vm::teardown::wait_for_teardown();
    ended
}

/// Threads made to answer calls before any VM exists, when making one is cheap: a thread
/// made later maps its stacks in a process whose every VM hears of it.
const FIRST_ANSWERING_THREADS: usize = 4;

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
    /// Held while a snapshot file is read, so that creates of one version arriving together
    /// read it once.
    loading: Mutex<()>,
}

impl Answerer for Host {
    /// Answers one request (a streamed response's pieces are sent as they come; the answer
    /// itself is the caller's to send).
    fn answer(&self, request: Request) -> Reply {
        let call = request.call;
        let body = match request.body {
            RequestBody::Create {
                config,
                snapshot_file,
            } => {
                if let Some(path) = snapshot_file.filter(|_| config.snap_start) {
                    self.adopt(&config, &path);
                }
                self.create(&config)
            }
            RequestBody::SaveSnapshot { config, path } => self.save(&config, &path),
            RequestBody::Invoke {
                environment,
                invocation,
                streamed,
            } => self.invoke(call, environment, invocation, streamed),
            RequestBody::Shutdown { environment } => self.shutdown(environment),
        };
        Reply { call, body }
    }

    /// Writes `reply`; one that cannot be written means the engine is gone, which the
    /// reading loop finds out by itself.
    fn send(&self, reply: &Reply) {
        let _ = write_message(&mut *lock(&self.output), reply);
    }
}

impl Host {
    /// Makes the snapshot in the file at `path` the SnapStart snapshot of `config`'s version
    /// if this host knows nothing of the version yet. A file that cannot be used (gone,
    /// damaged, of other code or another configuration) is passed over with a line on
    /// standard error: the create then snapshots the version here, as without a file.
    fn adopt(&self, config: &FunctionConfig, path: &Path) {
        if self.backend.knows_snap_start_version(config) {
            return;
        }
        let _loading = lock(&self.loading);
        if self.backend.knows_snap_start_version(config) {
            return;
        }
        let adopted = match self.backend.load_snapshot_of(path, config) {
            Ok(snapshot) => self
                .backend
                .adopt_snap_start_snapshot(snapshot)
                .map(|_| ())
                .map_err(|error| error.to_string()),
            Err(error) => Err(crate::error::chain(&error)),
        };
        if let Err(why) = adopted {
            eprintln!(
                "lambda-vmm-host: snapshot file {} not used ({why}); snapshotting `{}` here",
                path.display(),
                config.name
            );
        }
    }

    /// Writes the SnapStart snapshot this host took of `config`'s version to `path`.
    fn save(&self, config: &FunctionConfig, path: &Path) -> ReplyBody {
        let Some(snapshot) = self.backend.snap_start_snapshot(config) else {
            return ReplyBody::Failed(WireError::Failed(format!(
                "the VM host process holds no SnapStart snapshot of `{}`'s version",
                config.name
            )));
        };
        match snapshot.write_to(path) {
            Ok(()) => ReplyBody::Saved,
            Err(error) => ReplyBody::Failed(WireError::Failed(format!(
                "writing the snapshot of `{}` to {}: {}",
                config.name,
                path.display(),
                crate::error::chain(&error)
            ))),
        }
    }

    fn create(&self, config: &FunctionConfig) -> ReplyBody {
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
        // The backend contains its own panics; one of the code around it unwinds to the
        // calling thread's loop, and the environment, dropped on the way, goes with it.
        match environment.invoke(invocation) {
            Ok(result) => {
                lock(&self.environments).idle.insert(number, environment);
                ReplyBody::Invoked(result)
            }
            Err(error) => {
                // Broken: it must not be used again.
                environment.shutdown();
                ReplyBody::Failed(error.into())
            }
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
