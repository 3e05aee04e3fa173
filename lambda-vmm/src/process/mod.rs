//! The development backend: functions as plain child processes, for hosts without `/dev/kvm`
//! (see [`ProcessBackend`]).

mod api_server;
mod bootstrap;
mod capture;
mod child;
mod exit;
mod hub;
mod memory;
mod runtime_env;
mod stdio_env;
mod workdir;

use std::path::PathBuf;

use lambda_core::logs::DEFAULT_LOG_CAPACITY;
use lambda_core::{Backend, Contract, EnvironmentError, ExecutionEnvironment, FunctionConfig};

/// The development backend: runs functions as plain child processes, for hosts without
/// `/dev/kvm`.
///
/// **There is no isolation here.** The function runs as an ordinary process of the host's
/// user, with the host's file system, network and process table in reach; its limits
/// (memory size, `/tmp` size) are not enforced. Use it to develop and test on a machine
/// without KVM, never to run code you do not trust.
///
/// What it does give is the same contract as the micro-VM backend, on the same binaries:
///
/// - **Runtime API functions** ([`Contract::RuntimeApi`]) get a real HTTP/1.1 Runtime API
///   server on `127.0.0.1` at an ephemeral port, one per environment, serving
///   [`lambda_core::runtime_api::RuntimeApi`]; `AWS_LAMBDA_RUNTIME_API` and the other standard
///   variables are set ([`runtime_environment`](lambda_core::runtime_api::runtime_environment)).
///   Init runs at [`create`](Backend::create) (at most 10 s, measured as Init Duration); the
///   process then serves invocation after invocation. A timeout kills it
///   (`Sandbox.Timedout`, "Task timed out after 3.00 seconds"), as does a crash or exit during
///   an invocation (`Runtime.ExitError` naming the signal or status); the outcome says
///   [`InvokeResult::reset`](lambda_core::InvokeResult::reset), and the next invocation
///   starts a fresh process and Init.
/// - **Stdio functions** ([`Contract::Stdio`]) run once per invocation: the event on stdin,
///   the response on stdout (past 6 MB the process is killed: `Function.ResponseSizeTooLarge`),
///   the log on stderr; exit status 0 is success.
///
/// Each environment has a private directory (removed at shutdown) holding `task/` (a zip's
/// extracted `bootstrap`) and `tmp/`, the function's working directory and `TMPDIR`.
/// `LAMBDA_TASK_ROOT` names the directory of the code. Limitation: without namespaces
/// `/tmp` cannot be remapped, so a function writing the absolute path `/tmp/...` writes the
/// host's `/tmp`, shared with everything else; only relative paths and `TMPDIR` are private.
///
/// Logs: the function's stdout and stderr (stderr only, for stdio functions) per invocation,
/// between `START` and `END` / `REPORT` lines, bounded ([`ProcessBackend::with_log_capacity`]);
/// the last 4 KB come back as [`InvokeResult::log_tail`](lambda_core::InvokeResult::log_tail).
/// `Max Memory Used` is the process's peak resident set (`VmHWM`), not guest memory.
///
/// Shutdown kills the process and anything it started (its process group), stops the server
/// and its threads, and removes the private directory.
#[derive(Debug, Clone, Default)]
pub struct ProcessBackend {
    options: Options,
}

/// Settings shared by the environments of a [`ProcessBackend`].
#[derive(Debug, Clone)]
struct Options {
    /// Bytes of function output kept per invocation log.
    log_capacity: usize,
    /// Where environments' private directories are made.
    temp_root: PathBuf,
    /// Whether a function's process runs on only as many CPUs as its memory buys.
    cpu_share: bool,
}

impl Options {
    /// The CPUs a process of `config` may use: its share, or `None` for all of them.
    fn cpus(&self, config: &lambda_core::FunctionConfig) -> Option<usize> {
        self.cpu_share.then(|| config.vcpus() as usize)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_capacity: DEFAULT_LOG_CAPACITY,
            temp_root: std::env::temp_dir(),
            cpu_share: true,
        }
    }
}

impl ProcessBackend {
    /// A backend keeping up to 1 MiB of log per invocation and making environments' private
    /// directories under the system temporary directory.
    pub fn new() -> ProcessBackend {
        ProcessBackend::default()
    }

    /// Sets how many bytes of function output each invocation's log keeps; the rest is
    /// counted and dropped.
    pub fn with_log_capacity(mut self, bytes: usize) -> ProcessBackend {
        self.options.log_capacity = bytes;
        self
    }

    /// Sets the directory under which environments' private directories are made.
    pub fn with_temp_root(mut self, dir: impl Into<PathBuf>) -> ProcessBackend {
        self.options.temp_root = dir.into();
        self
    }

    /// Runs functions' processes on every CPU this process may use, as a plain spawn does,
    /// instead of on as many as the function's memory buys
    /// ([`FunctionConfig::vcpus`](lambda_core::FunctionConfig::vcpus), what the micro-VM gives
    /// it and the default here). The benches use it for their child-process baseline.
    pub fn with_all_host_cpus(mut self) -> ProcessBackend {
        self.options.cpu_share = false;
        self
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &str {
        "process"
    }

    fn create(
        &self,
        config: &FunctionConfig,
    ) -> Result<Box<dyn ExecutionEnvironment>, EnvironmentError> {
        config.validate()?;
        Ok(match config.contract {
            Contract::RuntimeApi => Box::new(runtime_env::RuntimeEnvironment::create(
                config,
                &self.options,
            )?),
            Contract::Stdio => {
                Box::new(stdio_env::StdioEnvironment::create(config, &self.options)?)
            }
        })
    }
}
