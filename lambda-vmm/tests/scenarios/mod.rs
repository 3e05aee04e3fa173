//! Lifecycle scenarios every backend must pass, written against `&dyn Backend` so the process
//! backend and the micro-VM backend run the same bodies (see `process_backend.rs`).
//!
//! They use the guest programs of `functions/`, found in `LAMBDA_FUNCTIONS_DIR`, else in
//! `$CARGO_TARGET_DIR/functions/bin` or `<workspace>/target/functions/bin`, where the root
//! package's build script puts them (`cargo build` at the workspace root).

#![allow(dead_code)] // Each test crate uses the scenarios it can run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lambda_core::limits::DEFAULT_MEMORY_MB;
use lambda_core::{
    Backend, CodeLocation, Contract, EnvironmentError, ErrorType, ExecutionEnvironment,
    FunctionConfig, Invocation, InvokeOutcome, InvokeResult, ResetReason,
};
use serde_json::{Value, json};

/// Where the guest programs are.
pub struct Functions {
    dir: PathBuf,
}

impl Functions {
    /// Finds the directory of built guest programs, or panics saying how to build them.
    pub fn locate() -> Functions {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("lambda-vmm lives in the workspace")
            .to_path_buf();
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::var_os("LAMBDA_FUNCTIONS_DIR") {
            candidates.push(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            candidates.push(workspace.join(dir).join("functions/bin"));
        }
        candidates.push(workspace.join("target/functions/bin"));
        match candidates.iter().find(|dir| dir.join("echo").is_file()) {
            Some(dir) => Functions { dir: dir.clone() },
            None => panic!(
                "the guest programs are not built (looked in {candidates:?}): run `cargo build` \
                 at the workspace root (its build script builds functions/), or point \
                 LAMBDA_FUNCTIONS_DIR at a directory holding them"
            ),
        }
    }

    /// The path of guest program `name`, which must exist.
    pub fn path(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        assert!(
            path.is_file(),
            "guest program {name} is missing from {}",
            self.dir.display()
        );
        path
    }

    /// A Runtime API function running program `name`.
    pub fn runtime(&self, function: &str, name: &str) -> FunctionConfig {
        FunctionConfig::new(function, CodeLocation::Executable(self.path(name)))
    }

    /// A one-shot stdio function running program `name`.
    pub fn stdio(&self, function: &str, name: &str) -> FunctionConfig {
        self.runtime(function, name).with_contract(Contract::Stdio)
    }
}

/// Invokes with a JSON event.
pub fn invoke(environment: &mut dyn ExecutionEnvironment, event: Value) -> InvokeResult {
    environment
        .invoke(Invocation::new(event.to_string().into_bytes()))
        .expect("the environment itself must not fail")
}

/// The response of a successful invocation, as JSON.
pub fn response_json(result: &InvokeResult) -> Value {
    match &result.outcome {
        InvokeOutcome::Response(bytes) => serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {bytes:?}")),
        InvokeOutcome::Error(error) => panic!(
            "expected a response, got {error}; log tail:\n{}",
            String::from_utf8_lossy(&result.log_tail)
        ),
    }
}

/// The error of a failed invocation.
pub fn error_of(result: &InvokeResult) -> &lambda_core::FunctionError {
    result.outcome.error().unwrap_or_else(|| {
        panic!(
            "expected an error, got a response: {:?}",
            String::from_utf8_lossy(result.outcome.response().unwrap())
        )
    })
}

/// `runtime-loop`'s invocation counter after one more `count` invocation (which must not
/// reset the environment).
pub fn count(environment: &mut dyn ExecutionEnvironment) -> u64 {
    let result = invoke(environment, json!({"action": "count"}));
    assert_eq!(result.reset, None);
    response_json(&result)["count"].as_u64().expect("a count")
}

/// Whether the REPORT tells of a cold start: `Init Duration`, or `Restore Duration` for an
/// environment restored from a snapshot.
pub fn reports_cold_start(result: &InvokeResult) -> bool {
    result.report.init_duration.is_some() || result.report.restore_duration.is_some()
}

/// 1,000 (or `invocations`) invocations on one environment: one Init (reported only by the
/// first invocation), and a global counter in the guest that keeps counting.
pub fn warm_reuse(backend: &dyn Backend, functions: &Functions, invocations: u64) {
    let config = functions.runtime("warm", "runtime-loop");
    let mut environment = backend.create(&config).expect("create");
    assert!(environment.init_duration() > Duration::ZERO);
    for expected in 1..=invocations {
        let result = invoke(&mut *environment, json!({"action": "count"}));
        assert_eq!(response_json(&result), json!({ "count": expected }));
        assert_eq!(result.reset, None);
        assert_eq!(
            reports_cold_start(&result),
            expected == 1,
            "Init (or Restore) Duration belongs to the first invocation only"
        );
        assert_eq!(result.report.memory_size_mb, 128);
        assert!(result.report.max_memory_used_mb >= 1);
    }
    environment.shutdown();
}

/// A runtime that reports an init error fails creation with that error.
pub fn init_error(backend: &dyn Backend, functions: &Functions) {
    let config = functions
        .runtime("init-error", "runtime-loop")
        .with_env("INIT_FAIL", "1");
    let error = match backend.create(&config) {
        Err(error) => error,
        Ok(_) => panic!("Init must fail"),
    };
    let EnvironmentError::Init {
        error,
        init_duration,
        ..
    } = &error
    else {
        panic!("expected an init error, got {error}")
    };
    assert_eq!(error.error_type.as_str(), "Runtime.InitError");
    assert_eq!(error.message, "INIT_FAIL is set");
    assert!(*init_duration < lambda_core::limits::INIT_TIMEOUT);
}

/// A runtime that crashes during Init fails creation with `Runtime.ExitError`.
pub fn init_crash(backend: &dyn Backend, functions: &Functions) {
    let config = functions
        .runtime("init-crash", "runtime-loop")
        .with_env("INIT_CRASH", "1");
    let Err(EnvironmentError::Init { error, .. }) = backend.create(&config) else {
        panic!("Init must fail")
    };
    assert_eq!(error.error_type, ErrorType::RuntimeExitError);
    assert!(
        error
            .message
            .starts_with("Runtime exited with error: signal: segmentation fault"),
        "{}",
        error.message
    );
}

/// A function error is an outcome; the environment stays warm.
pub fn function_error(backend: &dyn Backend, functions: &Functions) {
    let mut environment = backend
        .create(&functions.runtime("fn-error", "runtime-loop"))
        .expect("create");
    assert_eq!(count(&mut *environment), 1);
    let result = invoke(&mut *environment, json!({"action": "error"}));
    let error = error_of(&result);
    assert_eq!(error.error_type.as_str(), "Custom.Failure");
    assert_eq!(error.message, "requested failure");
    assert_eq!(result.reset, None);
    assert_eq!(count(&mut *environment), 3, "same process, still warm");
    environment.shutdown();
}

/// A crash mid-invocation fails it with `Runtime.ExitError` and resets; the next invocation
/// runs on a fresh process with a fresh Init.
pub fn crash_then_recovery(backend: &dyn Backend, functions: &Functions) {
    let mut environment = backend
        .create(&functions.runtime("crash", "runtime-loop"))
        .expect("create");
    assert_eq!(count(&mut *environment), 1);
    assert_eq!(count(&mut *environment), 2);
    let result = invoke(&mut *environment, json!({"action": "crash"}));
    let error = error_of(&result);
    assert_eq!(error.error_type, ErrorType::RuntimeExitError);
    assert!(
        error
            .message
            .starts_with("Runtime exited with error: signal: segmentation fault"),
        "{}",
        error.message
    );
    assert_eq!(result.reset, Some(ResetReason::Crash));
    let result = invoke(&mut *environment, json!({"action": "count"}));
    assert_eq!(
        response_json(&result),
        json!({"count": 1}),
        "a fresh process"
    );
    assert!(
        reports_cold_start(&result),
        "after a fresh Init (or restore)"
    );
    environment.shutdown();
}

/// An exit mid-invocation fails it with `Runtime.ExitError: exit status 2` and resets.
pub fn exit_then_recovery(backend: &dyn Backend, functions: &Functions) {
    let mut environment = backend
        .create(&functions.runtime("exit", "runtime-loop"))
        .expect("create");
    let result = invoke(&mut *environment, json!({"action": "exit"}));
    let error = error_of(&result);
    assert_eq!(error.error_type, ErrorType::RuntimeExitError);
    assert_eq!(error.message, "Runtime exited with error: exit status 2");
    assert_eq!(result.reset, Some(ResetReason::Exit));
    assert_eq!(count(&mut *environment), 1);
    environment.shutdown();
}

/// An invocation past its 1 s timeout fails with `Sandbox.Timedout` and resets; the next one
/// runs on a fresh process.
pub fn timeout_then_recovery(backend: &dyn Backend, functions: &Functions) {
    let config = functions
        .runtime("timeout", "runtime-loop")
        .with_timeout(Duration::from_secs(1));
    let mut environment = backend.create(&config).expect("create");
    assert_eq!(count(&mut *environment), 1);
    let result = invoke(&mut *environment, json!({"action": "spin"}));
    let error = error_of(&result);
    assert_eq!(error.error_type, ErrorType::SandboxTimedout);
    assert_eq!(error.message, "Task timed out after 1.00 seconds");
    assert_eq!(result.reset, Some(ResetReason::Timeout));
    let duration = result.report.duration;
    assert!(
        // Never before the deadline; the upper bound is loose on purpose (a loaded machine
        // must not fail it): it only says the watchdog stopped the function.
        duration >= Duration::from_secs(1) && duration < Duration::from_secs(6),
        "{duration:?}"
    );
    let tail = String::from_utf8_lossy(&result.log_tail);
    assert!(tail.contains("Task timed out after 1.00 seconds"), "{tail}");
    assert_eq!(count(&mut *environment), 1, "a fresh process");
    environment.shutdown();
}

/// A response over 6 MB fails with `Function.ResponseSizeTooLarge`; the runtime carries on.
pub fn response_too_large(backend: &dyn Backend, functions: &Functions) {
    let mut environment = backend
        .create(&functions.runtime("too-large", "runtime-loop"))
        .expect("create");
    let result = invoke(&mut *environment, json!({"action": "big"}));
    let error = error_of(&result);
    assert_eq!(error.error_type, ErrorType::FunctionResponseSizeTooLarge);
    assert!(
        error
            .message
            .contains("exceeded maximum allowed payload size"),
        "{}",
        error.message
    );
    assert_eq!(result.reset, None);
    assert_eq!(count(&mut *environment), 2, "the same process serves on");
    environment.shutdown();
}

/// A response in Lambda's streaming mode reaches the caller's stream as the function writes
/// it: the first piece arrives while the function still runs (it spins after writing it,
/// until its timeout ends it). Also: the whole stream, an error in the trailers, the 20 MB
/// cut-off, and a streamed answer to a caller without a stream (buffered).
pub fn streamed_response(backend: &dyn Backend, functions: &Functions) {
    use lambda_core::ResponseStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};

    let config = functions
        .runtime("stream", "runtime-loop")
        .with_timeout(Duration::from_secs(3));
    let mut environment = backend.create(&config).expect("create");
    let streamed = |environment: &mut dyn ExecutionEnvironment, event: Value| {
        let (sender, pieces) = mpsc::channel();
        let invocation = Invocation::new(event.to_string().into_bytes())
            .with_response_stream(ResponseStream::new(sender));
        let result = environment.invoke(invocation).expect("invoke");
        (result, pieces.try_iter().flatten().collect::<Vec<u8>>())
    };
    let (result, body) = streamed(&mut *environment, json!({"action": "stream"}));
    assert_eq!(result.outcome, InvokeOutcome::Response(Vec::new()));
    assert_eq!(body, b"aaaaabbbbbccccc");

    let (result, body) = streamed(
        &mut *environment,
        json!({"action": "stream", "error": true}),
    );
    let error = error_of(&result);
    assert_eq!(
        error.error_type,
        ErrorType::Function("Custom.StreamFailure".into())
    );
    assert_eq!(error.message, "failed mid-stream");
    assert_eq!(
        body, b"aaaaabbbbbccccc",
        "what was streamed before the error stays"
    );

    // No stream asked for: the streamed answer is buffered into the response.
    let result = invoke(&mut *environment, json!({"action": "stream", "chunks": 2}));
    assert_eq!(
        result.outcome,
        InvokeOutcome::Response(b"aaaaabbbbb".to_vec())
    );

    // 21 pieces of 1 MiB: cut off at 20 MiB.
    let big = json!({"action": "stream", "chunks": 21, "size": 1 << 20});
    let (result, body) = streamed(&mut *environment, big);
    assert_eq!(
        error_of(&result).error_type,
        ErrorType::FunctionResponseSizeTooLarge
    );
    assert!(
        body.len() <= lambda_core::limits::MAX_STREAMED_RESPONSE_BYTES,
        "{}",
        body.len()
    );
    assert!(
        body.len() >= 19 << 20,
        "the pieces before the limit were streamed: {}",
        body.len()
    );
    assert_eq!(result.reset, None, "the runtime serves on");

    // The first piece arrives while the function is still running: it spins after writing
    // it and can only end by its 3 s timeout.
    let (sender, pieces) = mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let running = std::thread::spawn(move || {
        let event = json!({"action": "stream", "then": "spin"}).to_string();
        let invocation =
            Invocation::new(event.into_bytes()).with_response_stream(ResponseStream::new(sender));
        let result = environment.invoke(invocation).expect("invoke");
        finished.store(true, Ordering::SeqCst);
        (environment, result)
    });
    let mut first = pieces.recv().expect("a first piece");
    assert!(
        !done.load(Ordering::SeqCst),
        "the first piece came before the invocation ended"
    );
    while first.len() < 5 {
        first.extend(pieces.recv().expect("the rest of the first piece"));
    }
    assert_eq!(first, b"aaaaa");
    let (environment, result) = running.join().unwrap();
    assert_eq!(error_of(&result).error_type, ErrorType::SandboxTimedout);
    assert_eq!(
        pieces.try_iter().count(),
        0,
        "nothing after the first piece"
    );
    environment.shutdown();
}

/// `/tmp` persists across warm invocations and is empty in a new environment.
pub fn tmp_persists_and_is_private(backend: &dyn Backend, functions: &Functions) {
    let config = functions.runtime("tmp", "runtime-loop");
    let mut first = backend.create(&config).expect("create");
    let result = invoke(&mut *first, json!({"action": "write-tmp", "data": "kept"}));
    assert_eq!(response_json(&result), json!({"ok": true}));
    let result = invoke(&mut *first, json!({"action": "read-tmp"}));
    assert_eq!(response_json(&result), json!({"data": "kept"}));
    let mut second = backend.create(&config).expect("create");
    let result = invoke(&mut *second, json!({"action": "read-tmp"}));
    assert_eq!(response_json(&result), json!({"data": null}));
    first.shutdown();
    second.shutdown();
}

/// Files outside `/var/task` and `/tmp` cannot be read.
pub fn reads_outside_task_and_tmp_fail(backend: &dyn Backend, functions: &Functions) {
    let mut environment = backend
        .create(&functions.runtime("confined", "runtime-loop"))
        .expect("create");
    for path in ["/etc/passwd", "/proc/self/environ", "/root/.bashrc"] {
        let result = invoke(
            &mut *environment,
            json!({"action": "read-file", "path": path}),
        );
        assert_eq!(response_json(&result)["ok"], json!(false), "{path}");
    }
    environment.shutdown();
}

/// Two environments of one function share no state.
pub fn environments_share_nothing(backend: &dyn Backend, functions: &Functions) {
    let config = functions.runtime("pair", "runtime-loop");
    let mut a = backend.create(&config).expect("create");
    let mut b = backend.create(&config).expect("create");
    assert_eq!(count(&mut *a), 1);
    assert_eq!(count(&mut *a), 2);
    assert_eq!(count(&mut *b), 1);
    assert_eq!(count(&mut *a), 3);
    a.shutdown();
    assert_eq!(count(&mut *b), 2);
    b.shutdown();
}

/// The function's output lands in its invocation's log, between START and END / REPORT.
pub fn logs_are_per_invocation(backend: &dyn Backend, functions: &Functions) {
    let mut environment = backend
        .create(&functions.runtime("logs", "runtime-loop"))
        .expect("create");
    for round in 0..20 {
        let message = format!("log line {round}");
        let result = invoke(
            &mut *environment,
            json!({"action": "log", "message": message}),
        );
        let tail = String::from_utf8_lossy(&result.log_tail).into_owned();
        let id = &result.report.request_id;
        let start = tail
            .find(&format!("START RequestId: {id} Version: $LATEST\n"))
            .unwrap_or_else(|| panic!("no START in {tail}"));
        let line = tail[start..]
            .find(&format!("{message}\n"))
            .unwrap_or_else(|| panic!("no {message:?} after START in {tail}"));
        let end = tail[start..]
            .find(&format!("END RequestId: {id}\nREPORT RequestId: {id}\t"))
            .unwrap_or_else(|| panic!("no END/REPORT in {tail}"));
        assert!(line < end, "{tail}");
        assert!(!tail.contains(&format!("log line {}", round + 1)));
    }
    environment.shutdown();
}

/// What a function prints outside an invocation is logged too: its Init output comes first
/// in the first invocation's log, before `START`; what it prints after posting a response,
/// before asking for its next event, is in that invocation's log (an invocation lasts until
/// the runtime asks, on every backend, as on Lambda), even while another of its threads
/// waits.
pub fn output_outside_invocations_is_logged(backend: &dyn Backend, functions: &Functions) {
    let config = functions
        .runtime("outside", "runtime-loop")
        .with_env("INIT_LOG", "printed during Init");
    let mut environment = backend.create(&config).expect("create");
    let first = invoke(
        &mut *environment,
        json!({"action": "log-after", "message": "printed after the response"}),
    );
    let second = invoke(&mut *environment, json!({"action": "echo"}));
    let tails: Vec<String> = [&first, &second]
        .iter()
        .map(|result| String::from_utf8_lossy(&result.log_tail).into_owned())
        .collect();
    let id = &first.report.request_id;
    let init = tails[0]
        .find("printed during Init\n")
        .unwrap_or_else(|| panic!("no Init output in {}", tails[0]));
    let start = tails[0]
        .find(&format!("START RequestId: {id} Version: $LATEST\n"))
        .unwrap_or_else(|| panic!("no START in {}", tails[0]));
    assert!(init < start, "Init output comes before START: {}", tails[0]);
    assert!(!tails[1].contains("printed during Init"), "{}", tails[1]);
    // Printed after the result, before the runtime asked for its next event: part of this
    // invocation, on every backend.
    assert_eq!(
        tails[0].matches("printed after the response\n").count(),
        1,
        "{tails:?}"
    );
    assert!(
        !tails[1].contains("printed after the response"),
        "{tails:?}"
    );
    // The same with a second thread blocked meanwhile: the invocation runs on until the
    // runtime asks for its next event, so the line is still in its own log.
    let threaded = invoke(
        &mut *environment,
        json!({"action": "log-after-thread", "message": "printed while a thread waits"}),
    );
    let tail = String::from_utf8_lossy(&threaded.log_tail);
    assert!(tail.contains("printed while a thread waits\n"), "{tail}");
    environment.shutdown();
}

/// A stdio function: the event on stdin, the response on stdout, logs from stderr.
pub fn stdio_echo(backend: &dyn Backend, functions: &Functions) {
    let mut echo = backend
        .create(&functions.stdio("echo", "echo"))
        .expect("create");
    for payload in [&b"{\"a\":1}"[..], b"", &vec![b'x'; 1 << 20]] {
        let result = echo
            .invoke(Invocation::new(payload.to_vec()))
            .expect("invoke");
        assert_eq!(result.outcome, InvokeOutcome::Response(payload.to_vec()));
        assert_eq!(result.reset, None);
    }
    echo.shutdown();

    let mut hello = backend
        .create(&functions.stdio("hello", "hello"))
        .expect("create");
    let result = invoke(&mut *hello, json!({"name": "Ada"}));
    assert_eq!(response_json(&result), json!({"message": "Hello, Ada!"}));
    let tail = String::from_utf8_lossy(&result.log_tail);
    assert!(tail.contains("hello: greeting Ada\n"), "{tail}");
    assert!(tail.contains("REPORT RequestId: "), "{tail}");
    hello.shutdown();
}

/// How stdio functions fail: exit status, signal, timeout, oversized output, log flood.
pub fn stdio_failures(backend: &dyn Backend, functions: &Functions) {
    let config = functions
        .stdio("misbehave", "misbehave")
        .with_timeout(Duration::from_secs(1));
    let mut environment = backend.create(&config).expect("create");

    let result = invoke(&mut *environment, json!("exit-3"));
    let error = error_of(&result);
    assert_eq!(error.error_type, ErrorType::RuntimeExitError);
    assert_eq!(error.message, "Runtime exited with error: exit status 3");
    assert_eq!(result.reset, Some(ResetReason::Exit));

    let result = invoke(&mut *environment, json!("null"));
    let error = error_of(&result);
    assert!(
        error
            .message
            .starts_with("Runtime exited with error: signal: segmentation fault"),
        "{}",
        error.message
    );
    assert_eq!(result.reset, Some(ResetReason::Crash));

    let result = invoke(&mut *environment, json!("spin"));
    assert_eq!(error_of(&result).error_type, ErrorType::SandboxTimedout);
    assert_eq!(
        error_of(&result).message,
        "Task timed out after 1.00 seconds"
    );
    assert_eq!(result.reset, Some(ResetReason::Timeout));

    let result = invoke(&mut *environment, json!("output-flood"));
    assert_eq!(
        error_of(&result).error_type,
        ErrorType::FunctionResponseSizeTooLarge
    );

    let result = invoke(&mut *environment, json!("log-flood"));
    assert_eq!(result.outcome, InvokeOutcome::Response(b"done".to_vec()));
    assert!(result.log_tail.len() <= lambda_core::limits::LOG_TAIL_BYTES);
    let tail = String::from_utf8_lossy(&result.log_tail);
    assert!(tail.contains("[log truncated: "), "{tail}");

    let result = invoke(&mut *environment, json!("echo me"));
    assert_eq!(
        result.outcome,
        InvokeOutcome::Response(b"\"echo me\"".to_vec())
    );
    environment.shutdown();
}

/// A function on the official `lambda_runtime` crate works unmodified, warm.
/// The official `lambda_runtime` crate's streaming response reaches the caller's stream:
/// its metadata prelude (JSON), eight NUL bytes, then the pieces the handler sent.
pub fn runtime_rust_streams(backend: &dyn Backend, functions: &Functions) {
    use lambda_core::ResponseStream;
    use std::sync::mpsc;

    let config = functions.runtime("rust-stream", "runtime-rust");
    let mut environment = backend.create(&config).expect("create");
    let (sender, pieces) = mpsc::channel();
    let event = json!({"stream": ["first ", "second ", "third"]}).to_string();
    let invocation =
        Invocation::new(event.into_bytes()).with_response_stream(ResponseStream::new(sender));
    let result = environment.invoke(invocation).expect("invoke");
    assert_eq!(result.outcome, InvokeOutcome::Response(Vec::new()));
    let body: Vec<u8> = pieces.try_iter().flatten().collect();
    let delimiter = body
        .windows(8)
        .position(|w| w == [0u8; 8])
        .expect("the prelude's delimiter");
    let prelude: Value = serde_json::from_slice(&body[..delimiter]).expect("a JSON prelude");
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(&body[delimiter + 8..], b"first second third");
    // The same process answers a buffered invocation next.
    let result = invoke(&mut *environment, json!({"n": 1}));
    assert_eq!(response_json(&result)["count"], 2);
    environment.shutdown();
}

pub fn runtime_rust(backend: &dyn Backend, functions: &Functions) {
    runtime_rust_at(backend, functions, DEFAULT_MEMORY_MB);
}

fn runtime_rust_at(backend: &dyn Backend, functions: &Functions, memory_mb: u32) {
    let config = functions
        .runtime("rust", "runtime-rust")
        .with_memory_mb(memory_mb);
    let mut environment = backend.create(&config).expect("create");
    for n in 1..=5 {
        let result = invoke(&mut *environment, json!({"n": n}));
        assert_eq!(
            response_json(&result),
            json!({"echo": {"n": n}, "count": n})
        );
    }
    environment.shutdown();
}

/// A C function speaking the protocol over plain sockets works, warm.
pub fn runtime_c(backend: &dyn Backend, functions: &Functions) {
    let mut environment = backend
        .create(&functions.runtime("c", "runtime-c"))
        .expect("create");
    for n in 0..5 {
        let result = invoke(&mut *environment, json!({"n": n}));
        assert_eq!(response_json(&result), json!({"n": n}));
        assert_eq!(result.reset, None);
    }
    environment.shutdown();
}

/// Code from a zip with `bootstrap` runs; a zip without one is refused at creation. The zips
/// are written to a directory of this test process's own, removed at the end.
pub fn zip_code(backend: &dyn Backend, functions: &Functions) {
    use std::io::Write;
    let scratch = std::env::temp_dir().join(format!("zip-code-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let write_zip = |name: &str, entry: &str, program: &Path| {
        let path = scratch.join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        zip.start_file(entry, options).unwrap();
        zip.write_all(&std::fs::read(program).unwrap()).unwrap();
        zip.finish().unwrap();
        path
    };
    let good = write_zip("good.zip", "bootstrap", &functions.path("runtime-loop"));
    let config = FunctionConfig::new("zipped", CodeLocation::Zip(good));
    let mut environment = backend.create(&config).expect("create from zip");
    assert_eq!(count(&mut *environment), 1);
    environment.shutdown();

    let bad = write_zip("bad.zip", "main", &functions.path("runtime-loop"));
    let config = FunctionConfig::new("unzipped", CodeLocation::Zip(bad));
    match backend.create(&config) {
        Err(EnvironmentError::Code(message)) => assert!(message.contains("bootstrap"), "{message}"),
        Err(other) => panic!("expected a code error, got {other}"),
        Ok(_) => panic!("a zip without bootstrap must be refused"),
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// Open file descriptors and live threads of this process. A thread that has begun to exit
/// is not counted: the kernel takes it out of `/proc/self/task` only some time after that.
pub fn process_resources() -> (usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count());
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |entries| {
        entries
            .flatten()
            .filter(|task| !exiting(&task.path()))
            .count()
    });
    (fds, threads)
}

/// Whether the thread whose `/proc` directory is `task` is gone or has begun to exit
/// (`PF_EXITING` in its flags, which the kernel sets before it clears the thread's id).
fn exiting(task: &std::path::Path) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(task.join("stat")) else {
        return true;
    };
    // After the command name (which may hold spaces and parentheses): state, ppid, pgrp,
    // session, tty_nr, tpgid, flags.
    let flags = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6))
        .and_then(|flags| flags.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no flags in {}: {stat}", task.display()));
    flags & PF_EXITING != 0
}

/// [`process_resources`] once the VMs' teardown is done and the VMs kept for reuse are
/// released. With `expected`, counted again (every millisecond, for up to 10 s) until it is
/// that: a second vCPU's thread, which `std::thread::scope` ran, can still be on its way out
/// when the invocation has returned (the scope waits for the thread's closure, not for the
/// thread's end), so a count taken at once may see it. A thread that stays is still counted.
pub fn settled_resources(expected: Option<(usize, usize)>) -> (usize, usize) {
    lambda_vmm::wait_for_teardown();
    lambda_vmm::release_kept_vms();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = process_resources();
        let settled = expected.is_none_or(|expected| now == expected);
        if settled || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `cycles` create / invoke / shutdown cycles leave no descriptor or thread behind. Run it
/// alone in its test binary: other tests' threads would blur the count.
pub fn no_leaks(backend: &dyn Backend, functions: &Functions, cycles: usize) {
    // Warm up anything created once per process (thread-local caches and the like).
    let config = functions.runtime("leaks", "runtime-loop");
    let mut environment = backend.create(&config).expect("create");
    invoke(&mut *environment, json!({}));
    environment.shutdown();
    // Count without the VMs kept for reuse.
    let before = settled_resources(None);
    for _ in 0..cycles {
        let mut environment = backend.create(&config).expect("create");
        let result = invoke(&mut *environment, json!({"action": "echo"}));
        assert!(result.outcome.response().is_some());
        environment.shutdown();
    }
    let after = settled_resources(Some(before));
    assert_eq!(
        before, after,
        "(open descriptors, threads) before and after {cycles} cycles"
    );
}

/// Runs one check of a one-shot test program that takes the check's name as its event
/// (`memory-c`, `threads-c`, `signals-c`, `go-goroutines`) in a fresh environment of
/// `memory_mb`, as function `function`.
pub fn one_shot_check(
    backend: &dyn Backend,
    functions: &Functions,
    (function, program): (&str, &str),
    check: &str,
    memory_mb: u32,
) -> InvokeResult {
    let config = functions
        .stdio(function, program)
        .with_memory_mb(memory_mb)
        .with_timeout(Duration::from_secs(30));
    let mut environment = backend.create(&config).expect("create");
    let result = environment
        .invoke(Invocation::new(format!("\"{check}\"")))
        .expect("the environment itself must not fail");
    environment.shutdown();
    result
}

/// Runs each check with `run` and asserts its response is the answer given.
pub fn assert_answers(answers: &[(&str, &str)], run: impl Fn(&str) -> InvokeResult) {
    for &(check, answer) in answers {
        assert_eq!(memory_response(&run(check)), answer, "{check}");
    }
}

/// Asserts that `check` crashed the program with `signal` (`SIGSEGV`, ...): a
/// `Runtime.ExitError` naming it, and the environment reset.
pub fn assert_crashed_with(result: &InvokeResult, signal: &str, check: &str) {
    let error = error_of(result);
    assert_eq!(
        error.error_type,
        ErrorType::RuntimeExitError,
        "{check}: {error}"
    );
    assert!(error.message.contains(signal), "{check}: {error}");
    assert_eq!(result.reset, Some(ResetReason::Crash), "{check}");
}

/// Runs one check of the `memory-c` program (see `functions/c/memory.c`) in a fresh one-shot
/// environment of `memory_mb`.
pub fn memory_check(
    backend: &dyn Backend,
    functions: &Functions,
    check: &str,
    memory_mb: u32,
) -> InvokeResult {
    one_shot_check(backend, functions, ("memory", "memory-c"), check, memory_mb)
}

/// The response text of a check that must succeed.
pub fn memory_response(result: &InvokeResult) -> String {
    match &result.outcome {
        InvokeOutcome::Response(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        InvokeOutcome::Error(error) => panic!(
            "expected a response, got {error}; log tail:\n{}",
            String::from_utf8_lossy(&result.log_tail)
        ),
    }
}

/// Memory moved around a lot, every page's data checked: the break moved up and down
/// (`heap`), and 20,000 random map, unmap, protect, move, drop and store calls checked page
/// by page against a model (`shuffle`). A translation that outlived its mapping shows here.
pub fn address_space_churn(backend: &dyn Backend, functions: &Functions) {
    let answers = [
        ("heap", "heap: 60 moves, every page as expected"),
        (
            "shuffle",
            "shuffle: 20000 operations, every page as expected",
        ),
    ];
    assert_answers(&answers, |check| {
        memory_check(backend, functions, check, 128)
    });
}

/// The address space runtimes rely on, as Linux gives it: reservations far larger than the
/// function's memory, commits beyond it that are only partly used, protections that hold
/// (a write to a read-only page, a read of an unmapped one, a call into a page that is not
/// executable: `SIGSEGV`), pages dropped with `MADV_DONTNEED` reading zero, mappings moved by
/// `mremap`, fixed and hinted placements, a deep stack, a monotonic clock, and the churn of
/// [`address_space_churn`]. The same program, the same answers, on every backend.
pub fn address_space(backend: &dyn Backend, functions: &Functions) {
    let answers = [
        ("reserve", "reserved 64 GiB"),
        ("commit", "committed 1 GiB, wrote 20 MiB"),
        ("exec", "called code on an executable page"),
        ("dontneed", "dropped pages read zero"),
        ("protnone", "kept"),
        ("remap", "moved, contents kept"),
        ("fixed", "noreplace: EEXIST, fixed: replaced, contents: 0"),
        ("hint", "hint honoured"),
        ("stack", "recursed 6144"),
        ("clock", "monotonic over 100000 reads"),
    ];
    assert_answers(&answers, |check| {
        memory_check(backend, functions, check, 128)
    });
    address_space_churn(backend, functions);
    for check in ["readonly", "unmapped", "noexec"] {
        let result = memory_check(backend, functions, check, 128);
        assert_crashed_with(&result, "SIGSEGV", check);
    }
}

/// Runs one check of the `threads-c` program (see `functions/c/threads.c`) in a fresh
/// one-shot environment of `memory_mb`.
pub fn threads_check(
    backend: &dyn Backend,
    functions: &Functions,
    check: &str,
    memory_mb: u32,
) -> InvokeResult {
    one_shot_check(
        backend,
        functions,
        ("threads", "threads-c"),
        check,
        memory_mb,
    )
}

/// POSIX threads as C programs use them, the same answers on every backend: threads made,
/// synchronised with mutexes and condition variables, and joined; two threads that spin on
/// a shared word with no syscall (they go on only if the CPU is shared by preemption); long
/// floating-point loops in two threads at once, each equal to the same loop run alone; timed
/// waits and sleeping threads; the first thread leaving with `pthread_exit` while another
/// writes the response; distinct thread ids; messages both ways over a Unix socket pair; a
/// robust mutex left locked by a thread that exited (`EOWNERDEAD`). A thread that writes
/// through a null pointer ends the invocation with SIGSEGV.
pub fn threads(backend: &dyn Backend, functions: &Functions) {
    threads_at(backend, functions, DEFAULT_MEMORY_MB);
}

/// Memory that buys two vCPUs (Lambda's CPU share: one per 1,769 MB).
pub const TWO_VCPUS_MB: u32 = 3_538;

/// CPUs a function of `memory_mb` should see: what its memory buys, and on the process
/// backend no more than the host has.
pub fn cpus_for(backend: &dyn Backend, memory_mb: u32) -> usize {
    let bought = lambda_core::limits::vcpus_for_memory_mb(memory_mb) as usize;
    if backend.name() == "process" {
        let host = std::thread::available_parallelism().map_or(1, |n| n.get());
        bought.min(host)
    } else {
        bought
    }
}

/// The same checks as [`threads`], [`signals`], [`runtime_rust`], [`go_goroutines`] and
/// [`go_runtime`] with two vCPUs (3,538 MB), where threads run at once and move between
/// vCPUs, and warm invocations end with threads still on both; and two CPU-bound threads that
/// see two CPUs and compute what they compute on one.
pub fn threads_on_two_vcpus(backend: &dyn Backend, functions: &Functions) {
    threads_at(backend, functions, TWO_VCPUS_MB);
    signals_at(backend, functions, TWO_VCPUS_MB);
    runtime_rust_at(backend, functions, TWO_VCPUS_MB);
    if std::env::var_os("LAMBDA_SKIP_GO_TESTS").is_none() {
        go_goroutines_at(backend, functions, TWO_VCPUS_MB);
        go_runtime_at(backend, functions, TWO_VCPUS_MB);
    }
    for memory_mb in [DEFAULT_MEMORY_MB, TWO_VCPUS_MB] {
        let result = threads_check(backend, functions, "parallel 20", memory_mb);
        let cpus = cpus_for(backend, memory_mb);
        assert_eq!(
            memory_response(&result),
            format!(r#"{{"cpus":{cpus},"sums":[14262675764400740407,9152359397231472205]}}"#),
            "at {memory_mb} MB"
        );
    }
}

fn threads_at(backend: &dyn Backend, functions: &Functions, memory_mb: u32) {
    let answers = [
        ("pthreads", r#"{"sum":8000002000000,"joined":36}"#),
        ("spin", r#"{"handed":40}"#),
        ("fpu", r#"{"same":true,"sse":47.294600}"#),
        ("sleepers", r#"{"woke":[10,20,30,40],"timed_out":true}"#),
        ("exit", r#"{"written_by":"second thread"}"#),
        ("tids", r#"{"distinct":true,"first_is_pid":true}"#),
        ("socketpair", r#"{"exchanged":100}"#),
        ("robust", r#"{"first":"EOWNERDEAD","second":0}"#),
    ];
    assert_answers(&answers, |check| {
        threads_check(backend, functions, check, memory_mb)
    });
    let result = threads_check(backend, functions, "crash", memory_mb);
    assert_crashed_with(&result, "SIGSEGV", "crash");
}

/// `cycles` create / invoke / shutdown cycles of a one-shot function that starts threads
/// leave no descriptor, thread or memory behind; every other cycle runs at 3,538 MB, where
/// the threads run on two vCPUs (each on a host thread of its own). Run it alone in its test
/// binary.
pub fn threaded_no_leaks(backend: &dyn Backend, functions: &Functions, cycles: usize) {
    let check = |memory_mb| {
        let result = threads_check(backend, functions, "tids", memory_mb);
        assert_eq!(
            memory_response(&result),
            r#"{"distinct":true,"first_is_pid":true}"#
        );
    };
    let mut cycle = 0;
    let mut run = || {
        cycle += 1;
        check(if cycle % 2 == 0 {
            TWO_VCPUS_MB
        } else {
            DEFAULT_MEMORY_MB
        });
    };
    run();
    run();
    // Micro-VMs are torn down (or kept for reuse) on a background thread: count once it is
    // done, without the VMs kept.
    let before = (settled_resources(None), resident_mb());
    for _ in 0..cycles {
        run();
    }
    let after = (settled_resources(Some(before.0)), resident_mb());
    assert_eq!(
        before.0, after.0,
        "(open descriptors, threads) before and after {cycles} cycles"
    );
    // Each environment holds megabytes of guest memory: a leak of one per cycle would show
    // as gigabytes. Allocator caches may keep a little.
    assert!(
        after.1 < before.1 + 64,
        "resident memory grew from {} MB to {} MB over {cycles} cycles",
        before.1,
        after.1
    );
}

/// This process's resident memory, in MB.
fn resident_mb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096 / (1 << 20)
}

/// The `go-goroutines` program (see `functions/go/goroutines`), run one check per fresh
/// one-shot environment.
const GO_GOROUTINES: (&str, &str) = ("goroutines", "go-goroutines");

/// A static Go program, unmodified, at 128 MB: goroutines over channels, a mutex and a
/// WaitGroup, timers (the runtime's network poller and its wake-up pipe), the garbage
/// collector, a goroutine locked to its thread, a nil dereference recovered (its SIGSEGV
/// goes to Go's handler on the signal stack, which turns it into a panic); a goroutine's
/// panic, and an unrecovered nil dereference, end the program with status 2. The same
/// answers on every backend.
pub fn go_goroutines(backend: &dyn Backend, functions: &Functions) {
    go_goroutines_at(backend, functions, DEFAULT_MEMORY_MB);
}

fn go_goroutines_at(backend: &dyn Backend, functions: &Functions, memory_mb: u32) {
    let go_check = |backend: &dyn Backend, functions: &Functions, check: &str| {
        one_shot_check(backend, functions, GO_GOROUTINES, check, memory_mb)
    };
    let answers = [
        ("sum", r#"{"sum":500000500000}"#),
        ("mutex", r#"{"counter":100000}"#),
        ("sleep", r#"{"slept_ms":55,"at_least_10ms":true}"#),
        ("gc", r#"{"kept":256,"intact":true,"collected":true}"#),
        ("locked", r#"{"locked":499500,"others":45}"#),
        (
            "nil",
            r#"{"recovered":"runtime error: invalid memory address or nil pointer dereference"}"#,
        ),
    ];
    assert_answers(&answers, |check| go_check(backend, functions, check));
    let result = go_check(backend, functions, "panic");
    let error = error_of(&result);
    assert_eq!(error.error_type, ErrorType::RuntimeExitError, "{error}");
    assert!(error.message.contains("exit status 2"), "{error}");
    assert!(
        String::from_utf8_lossy(&result.log_tail).contains("created by main.main"),
        "the panic's trace is in the log"
    );
    // An unrecovered nil dereference: Go's handler reports the signal, then exits 2.
    let result = go_check(backend, functions, "nil-crash");
    let error = error_of(&result);
    assert_eq!(error.error_type, ErrorType::RuntimeExitError, "{error}");
    let log = String::from_utf8_lossy(&result.log_tail);
    assert!(
        log.contains("[signal SIGSEGV: segmentation violation code=0x1 addr=0x0"),
        "{log}"
    );
}

/// A Go custom runtime written with `net/http` (see `functions/go/runtime`): warm
/// invocations answered from a goroutine, state kept between them, a function error posted
/// to `/error`.
pub fn go_runtime(backend: &dyn Backend, functions: &Functions) {
    go_runtime_at(backend, functions, DEFAULT_MEMORY_MB);
}

fn go_runtime_at(backend: &dyn Backend, functions: &Functions, memory_mb: u32) {
    let config = functions
        .runtime("go-runtime", "go-runtime")
        .with_memory_mb(memory_mb);
    let mut environment = backend.create(&config).expect("create");
    for count in 1..=3 {
        let result = invoke(&mut *environment, json!({"n": count}));
        assert_eq!(
            response_json(&result),
            json!({"echo": {"n": count}, "count": count, "go": true})
        );
    }
    let result = invoke(&mut *environment, json!({"fail": true}));
    let error = error_of(&result);
    assert_eq!(error.error_type.as_str(), "Go.Failure", "{error}");
    assert_eq!(error.message, "asked to fail");
    let result = invoke(&mut *environment, json!({"n": 5}));
    assert_eq!(response_json(&result)["count"], json!(5));
    environment.shutdown();
}

/// The `signals-c` program (see `functions/c/signals.c`), run one check per fresh one-shot
/// environment.
const SIGNALS_C: (&str, &str) = ("signals", "signals-c");

/// Runs one check of `signals-c` at 128 MB.
pub fn signals_check(backend: &dyn Backend, functions: &Functions, check: &str) -> InvokeResult {
    one_shot_check(backend, functions, SIGNALS_C, check, DEFAULT_MEMORY_MB)
}

/// Signals as C programs use them, the same answers on every backend: a SIGSEGV handler on
/// an alternate stack and a SIGFPE handler that jump back with `siglongjmp`; `raise` and its
/// handler's mask; a blocked signal pending until unblocked; `pthread_kill` to a thread in
/// `sigsuspend`; `sigtimedwait`; a handler using the FPU in the middle of a floating-point
/// loop; a handler that edits the interrupted context; `abort` with a handler still ending in
/// SIGABRT; `rt_sigreturn` on bytes that are no frame, and a handler without a restorer,
/// ending in SIGSEGV; SIGPIPE with the `EPIPE` of a broken pipe (ignored, handled, not sent
/// with `MSG_NOSIGNAL`, and by default ending the program).
pub fn signals(backend: &dyn Backend, functions: &Functions) {
    signals_at(backend, functions, DEFAULT_MEMORY_MB);
}

fn signals_at(backend: &dyn Backend, functions: &Functions, memory_mb: u32) {
    let signals_check = |backend: &dyn Backend, functions: &Functions, check: &str| {
        one_shot_check(backend, functions, SIGNALS_C, check, memory_mb)
    };
    let answers = [
        (
            "segv",
            r#"{"caught":11,"addr":"(nil)","code":1,"on_altstack":true}"#,
        ),
        ("fpe", r#"{"caught":8,"code":1}"#),
        (
            "raise",
            r#"{"handled":1,"blocked_inside":true,"blocked_after":false}"#,
        ),
        (
            "mask",
            r#"{"while_blocked":0,"pending":true,"after_unblock":1}"#,
        ),
        (
            "thread",
            r#"{"handled":1,"on_that_thread":true,"sigsuspend":-1,"eintr":true}"#,
        ),
        (
            "sigwait",
            r#"{"got":10,"signo":10,"then":-1,"eagain":true}"#,
        ),
        ("fpu", r#"{"same":true,"signalled_during":true}"#),
        ("context", r#"{"skipped":4}"#),
    ];
    assert_answers(&answers, |check| signals_check(backend, functions, check));
    // A frame that is no frame, and a handler with no way back: SIGSEGV, as Linux forces.
    for check in ["bad-return", "no-restorer"] {
        let result = signals_check(backend, functions, check);
        assert_crashed_with(&result, "SIGSEGV", check);
    }
    assert_answers(
        &[(
            "sigpipe",
            r#"{"ignored":[-1,"EPIPE"],"caught":[-1,"EPIPE",1],"nosignal":[-1,"EPIPE",1]}"#,
        )],
        |check| signals_check(backend, functions, check),
    );
    let result = signals_check(backend, functions, "sigpipe-default");
    let error = error_of(&result);
    assert!(error.message.contains("SIGPIPE"), "{error}");
    let result = signals_check(backend, functions, "abort");
    let error = error_of(&result);
    assert!(error.message.contains("SIGABRT"), "{error}");
    assert!(
        String::from_utf8_lossy(&result.log_tail).contains("handler for signal 6 ran"),
        "the handler ran first"
    );
}
