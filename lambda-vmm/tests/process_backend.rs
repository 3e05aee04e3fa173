//! The lifecycle scenarios on the process (development) backend.

mod scenarios;

use lambda_vmm::ProcessBackend;
use scenarios::Functions;

fn setup() -> (ProcessBackend, Functions) {
    (ProcessBackend::new(), Functions::locate())
}

#[test]
fn warm_reuse_1000_invocations_one_init() {
    let (backend, functions) = setup();
    scenarios::warm_reuse(&backend, &functions, 1000);
}

#[test]
fn init_error() {
    let (backend, functions) = setup();
    scenarios::init_error(&backend, &functions);
}

#[test]
fn init_crash() {
    let (backend, functions) = setup();
    scenarios::init_crash(&backend, &functions);
}

#[test]
fn function_error() {
    let (backend, functions) = setup();
    scenarios::function_error(&backend, &functions);
}

#[test]
fn crash_then_recovery() {
    let (backend, functions) = setup();
    scenarios::crash_then_recovery(&backend, &functions);
}

#[test]
fn exit_then_recovery() {
    let (backend, functions) = setup();
    scenarios::exit_then_recovery(&backend, &functions);
}

#[test]
fn timeout_then_recovery() {
    let (backend, functions) = setup();
    scenarios::timeout_then_recovery(&backend, &functions);
}

#[test]
fn response_too_large() {
    let (backend, functions) = setup();
    scenarios::response_too_large(&backend, &functions);
}

#[test]
fn streamed_response() {
    let (backend, functions) = setup();
    scenarios::streamed_response(&backend, &functions);
}

#[test]
fn runtime_rust_streams() {
    let (backend, functions) = setup();
    scenarios::runtime_rust_streams(&backend, &functions);
}

// Two scenarios hold only where there is isolation and run on the micro-VM backend
// (tests/kvm_backend.rs): `tmp_persists_and_is_private` (a child process's /tmp is the
// host's) and `reads_outside_task_and_tmp_fail` (a child process can read any file its user
// can). The process backend documents both limits.

#[test]
fn environments_share_nothing() {
    let (backend, functions) = setup();
    scenarios::environments_share_nothing(&backend, &functions);
}

#[test]
fn output_outside_invocations_is_logged() {
    let (backend, functions) = setup();
    scenarios::output_outside_invocations_is_logged(&backend, &functions);
}

#[test]
fn logs_are_per_invocation() {
    let (backend, functions) = setup();
    scenarios::logs_are_per_invocation(&backend, &functions);
}

#[test]
fn stdio_echo() {
    let (backend, functions) = setup();
    scenarios::stdio_echo(&backend, &functions);
}

#[test]
fn stdio_failures() {
    let (backend, functions) = setup();
    scenarios::stdio_failures(&backend, &functions);
}

#[test]
fn runtime_rust() {
    let (backend, functions) = setup();
    scenarios::runtime_rust(&backend, &functions);
}

#[test]
fn runtime_c() {
    let (backend, functions) = setup();
    scenarios::runtime_c(&backend, &functions);
}

#[test]
fn zip_code() {
    let (backend, functions) = setup();
    scenarios::zip_code(&backend, &functions);
}

/// The process backend's private directory is the function's working directory and TMPDIR:
/// relative writes persist across warm invocations and are not seen by another environment.
#[test]
fn private_directory_is_per_environment() {
    let (backend, functions) = setup();
    let config = functions.stdio("env", "misbehave");
    let mut environment = lambda_core::Backend::create(&backend, &config).unwrap();
    let result = scenarios::invoke(&mut *environment, serde_json::json!("env"));
    let text = String::from_utf8(result.outcome.response().unwrap().to_vec()).unwrap();
    let var = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_string()
    };
    let tmpdir = var("TMPDIR");
    assert!(tmpdir.contains("lambda-process-"), "{tmpdir}");
    assert!(std::path::Path::new(&tmpdir).is_dir());
    assert_eq!(var("AWS_LAMBDA_FUNCTION_NAME"), "env");
    assert_eq!(var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), "128");
    assert_eq!(var("TZ"), ":UTC");
    assert!(
        !text.contains("AWS_LAMBDA_RUNTIME_API="),
        "stdio functions get no Runtime API"
    );
    environment.shutdown();
    assert!(
        !std::path::Path::new(&tmpdir).exists(),
        "removed at shutdown"
    );
}

#[test]
fn address_space() {
    let (backend, functions) = setup();
    scenarios::address_space(&backend, &functions);
}

#[test]
fn threads() {
    let (backend, functions) = setup();
    scenarios::threads(&backend, &functions);
}

#[test]
fn threads_on_two_vcpus() {
    let (backend, functions) = setup();
    scenarios::threads_on_two_vcpus(&backend, &functions);
}

#[test]
#[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
fn go_goroutines() {
    let (backend, functions) = setup();
    scenarios::go_goroutines(&backend, &functions);
}

#[test]
#[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
fn go_runtime() {
    let (backend, functions) = setup();
    scenarios::go_runtime(&backend, &functions);
}

#[test]
fn signals() {
    let (backend, functions) = setup();
    scenarios::signals(&backend, &functions);
}
