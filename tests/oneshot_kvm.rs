//! The one-shot stdio contract on the KVM micro-VM backend: good programs, bad files and
//! misbehaving guests.

mod common;

use std::time::Duration;

use common::{code_error, function, kvm_backend, stdio_config, tempdir};
use lambda::core::{Backend, CodeLocation, ErrorType, Invocation, InvokeResult, ResetReason};
use lambda::vmm::{MicroVmBackend, StdioEnvironment};

fn environment(backend: &MicroVmBackend, name: &str) -> StdioEnvironment {
    backend.create_stdio(&stdio_config(name)).unwrap()
}

fn invoke(environment: &mut StdioEnvironment, payload: &str) -> InvokeResult {
    environment.run(Invocation::new(payload)).unwrap()
}

fn response(result: &InvokeResult) -> String {
    let payload = result
        .outcome
        .response()
        .unwrap_or_else(|| panic!("expected a response, got {:?}", result.outcome));
    String::from_utf8_lossy(payload).into_owned()
}

fn error_of(result: &InvokeResult) -> (ErrorType, String) {
    let error = result
        .outcome
        .error()
        .unwrap_or_else(|| panic!("expected an error, got {:?}", result.outcome));
    (error.error_type.clone(), error.message.clone())
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn rust_json_function_answers_with_a_report() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "hello");
    let invocation = Invocation::new(r#"{"name":"micro-VM"}"#);
    let request_id = invocation.request_id.clone();
    let result = env.run(invocation).unwrap();
    assert_eq!(response(&result), r#"{"message":"Hello, micro-VM!"}"#);
    assert_eq!(result.reset, None);
    assert!(String::from_utf8_lossy(&result.log_tail).contains("hello: greeting micro-VM"));
    let report = result.report.to_string();
    assert!(report.starts_with(&format!("REPORT RequestId: {request_id}\tDuration: ")));
    assert!(report.contains("\tMemory Size: 128 MB\tMax Memory Used: "));
    assert!(result.report.max_memory_used_mb >= 1 && result.report.max_memory_used_mb <= 128);
    assert!(env.last_stats().syscalls > 5);
    assert!(env.last_stats().exits >= env.last_stats().syscalls);
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn c_programs_static_and_static_pie() {
    let backend = kvm_backend();
    for name in ["hello-c", "hello-c-pie"] {
        let mut env = environment(&backend, name);
        let result = invoke(&mut env, "there");
        assert_eq!(response(&result), "Hello from C, there!", "{name}");
        assert!(String::from_utf8_lossy(&result.log_tail).contains("hello-c: 5 bytes"));
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn rust_programs_pie_and_non_pie_echo_binary_payloads() {
    let backend = kvm_backend();
    let payload: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    for name in ["echo", "echo-nopie"] {
        let mut env = environment(&backend, name);
        let result = env.run(Invocation::new(payload.clone())).unwrap();
        assert_eq!(
            result.outcome.response(),
            Some(payload.as_slice()),
            "{name}"
        );
        let empty = env.run(Invocation::new(Vec::new())).unwrap();
        assert_eq!(empty.outcome.response(), Some(&[][..]));
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn zip_packages_run_their_bootstrap() {
    let backend = kvm_backend();
    let dir = tempdir("zip");
    let good = dir.join("function.zip");
    write_zip(
        &good,
        &[("bootstrap", &std::fs::read(function("echo")).unwrap())],
    );
    let config = stdio_config("echo").with_code(CodeLocation::Zip(good));
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new("zipped")).unwrap();
    assert_eq!(result.outcome.response(), Some(&b"zipped"[..]));

    let bad = dir.join("nobootstrap.zip");
    write_zip(&bad, &[("main", b"\x7fELF")]);
    let error = backend
        .create(&stdio_config("echo").with_code(CodeLocation::Zip(bad)))
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("no file named `bootstrap`"),
        "{error}"
    );
}

fn write_zip(path: &std::path::Path, files: &[(&str, &[u8])]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

fn create_error(backend: &MicroVmBackend, code: CodeLocation) -> String {
    code_error(backend, &stdio_config("echo").with_code(code))
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn bad_files_are_refused_before_any_vm_exists() {
    let backend = kvm_backend();
    let dir = tempdir("bad-elf");
    let text = dir.join("script.sh");
    std::fs::write(&text, "echo hi\n").unwrap();
    assert!(create_error(&backend, CodeLocation::Executable(text)).contains("nor a #! script"));
    // A script without a base image: its interpreter is nowhere.
    let script = dir.join("script");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let error = create_error(&backend, CodeLocation::Executable(script));
    assert!(error.contains("no base image"), "{error}");

    let mut elf32 = std::fs::read(function("echo")).unwrap()[..64].to_vec();
    elf32[4] = 1; // ELFCLASS32
    let elf32_path = dir.join("elf32");
    std::fs::write(&elf32_path, elf32).unwrap();
    assert!(create_error(&backend, CodeLocation::Executable(elf32_path)).contains("32-bit"));

    let mut arm = std::fs::read(function("echo")).unwrap();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    let arm_path = dir.join("arm");
    std::fs::write(&arm_path, arm).unwrap();
    assert!(create_error(&backend, CodeLocation::Executable(arm_path)).contains("x86-64"));

    let dynamic = create_error(
        &backend,
        CodeLocation::Executable(function("hello-dynamic")),
    );
    assert!(dynamic.contains("dynamically linked"), "{dynamic}");

    let whole = std::fs::read(function("echo")).unwrap();
    let truncated = dir.join("truncated");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    assert!(create_error(&backend, CodeLocation::Executable(truncated)).contains("truncated"));
    let headers_only = dir.join("headers-only");
    std::fs::write(&headers_only, &whole[..4096]).unwrap();
    assert!(create_error(&backend, CodeLocation::Executable(headers_only)).contains("truncated"));

    let missing = create_error(&backend, CodeLocation::Executable(dir.join("missing")));
    assert!(missing.contains("cannot read"), "{missing}");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn crashes_name_the_signal_and_address_and_the_next_run_works() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    let cases = [
        (
            "null",
            "signal: segmentation fault (SIGSEGV): page fault",
            Some("at address 0x0 "),
        ),
        ("ud2", "signal: illegal instruction (SIGILL)", None),
        ("div0", "signal: floating point exception (SIGFPE)", None),
        (
            "stack-overflow",
            "signal: segmentation fault (SIGSEGV)",
            None,
        ),
        ("abort", "signal: aborted (SIGABRT)", None),
    ];
    for (mode, expected, address) in cases {
        let result = invoke(&mut env, mode);
        let (error_type, message) = error_of(&result);
        assert_eq!(error_type, ErrorType::RuntimeExitError, "{mode}: {message}");
        assert!(
            message.starts_with("Runtime exited with error: "),
            "{message}"
        );
        assert!(message.contains(expected), "{mode}: {message}");
        if let Some(address) = address {
            assert!(message.contains(address), "{mode}: {message}");
        }
        assert_eq!(result.reset, Some(ResetReason::Crash), "{mode}");
        assert_eq!(response(&invoke(&mut env, "still alive")), "still alive");
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn exit_statuses_and_panics_are_exit_errors() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    let (error_type, message) = error_of(&invoke(&mut env, "exit-3"));
    assert_eq!(error_type, ErrorType::RuntimeExitError);
    assert_eq!(message, "Runtime exited with error: exit status 3");
    let panic = invoke(&mut env, "panic");
    assert_eq!(
        error_of(&panic).1,
        "Runtime exited with error: exit status 101"
    );
    assert!(String::from_utf8_lossy(&panic.log_tail).contains("boom"));
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn an_infinite_loop_times_out_at_the_deadline() {
    let backend = kvm_backend();
    let config = stdio_config("misbehave").with_timeout(Duration::from_secs(1));
    let mut env = backend.create_stdio(&config).unwrap();
    let result = invoke(&mut env, "spin");
    let (error_type, message) = error_of(&result);
    assert_eq!(error_type, ErrorType::SandboxTimedout);
    assert_eq!(message, "Task timed out after 1.00 seconds");
    assert_eq!(result.reset, Some(ResetReason::Timeout));
    // The kick lands at the deadline, never before it. (The upper bound only says that the
    // watchdog stopped the guest, not some later limit: it is loose, so a loaded machine
    // cannot fail it.)
    assert!(result.report.duration >= Duration::from_secs(1));
    assert!(
        result.report.duration < Duration::from_secs(6),
        "{}",
        result.report
    );
    assert_eq!(response(&invoke(&mut env, "next")), "next");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_memory_bomb_hits_the_function_memory_size() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    let result = invoke(&mut env, "memory-bomb");
    let (error_type, message) = error_of(&result);
    assert_eq!(error_type, ErrorType::RuntimeOutOfMemory, "{message}");
    assert!(message.contains("128 MB"), "{message}");
    assert_eq!(result.reset, Some(ResetReason::OutOfMemory));
    assert!(result.report.max_memory_used_mb > 64);
    assert!(result.report.max_memory_used_mb <= 128);
    assert_eq!(response(&invoke(&mut env, "after")), "after");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn output_floods_and_log_floods_are_bounded() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    let (error_type, _) = error_of(&invoke(&mut env, "output-flood"));
    assert_eq!(error_type, ErrorType::FunctionResponseSizeTooLarge);

    let logged = invoke(&mut env, "log-flood");
    assert_eq!(response(&logged), "done");
    assert_eq!(logged.log_tail.len(), lambda::core::limits::LOG_TAIL_BYTES);
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn unknown_syscalls_get_enosys_and_are_counted() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    let result = invoke(&mut env, "unknown-syscall");
    assert_eq!(response(&result), r#"{"ret":-38}"#);
    assert_eq!(env.last_stats().unsupported_syscalls.get(&1000), Some(&1));
    assert!(String::from_utf8_lossy(&result.log_tail).contains("1000 (x1)"));
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn bad_pointers_get_efault() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    assert_eq!(response(&invoke(&mut env, "bad-pointer")), r#"{"ret":-14}"#);
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_environment_carries_lambda_variables_and_the_functions_own() {
    let backend = kvm_backend();
    let config = stdio_config("misbehave").with_env("GREETING", "hi there");
    let mut env = backend.create_stdio(&config).unwrap();
    let output = response(&invoke(&mut env, "env"));
    assert!(
        output.contains("AWS_LAMBDA_FUNCTION_NAME=misbehave\n"),
        "{output}"
    );
    assert!(output.contains("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128\n"));
    assert!(output.contains("GREETING=hi there\n"));
    assert!(output.contains("argv0=/var/task/bootstrap"));
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn syscall_sites_are_rewritten_to_enter_directly() {
    let backend = kvm_backend();
    // A function of its own, so no other test has taught its program's sites yet.
    let mut env = backend.create_stdio(&stdio_config("hello-c-pie")).unwrap();
    let first = invoke(&mut env, "one");
    assert_eq!(response(&first), "Hello from C, one!");
    let cold = env.last_stats().clone();
    let second = invoke(&mut env, "two");
    assert_eq!(response(&second), "Hello from C, two!");
    let warm = env.last_stats().clone();
    // The first run takes each site through ring 0 once; the next VM starts with the sites
    // learned, so nearly every syscall enters directly.
    assert!(cold.direct_syscalls < cold.syscalls, "{cold:?}");
    assert!(
        warm.direct_syscalls > cold.direct_syscalls,
        "{cold:?} then {warm:?}"
    );
    assert!(warm.direct_syscalls * 2 > warm.syscalls, "{warm:?}");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_network_is_closed_and_threads_run() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    assert_eq!(
        response(&invoke(&mut env, "connect")),
        "127.0.0.1:80 ConnectionRefused\n10.0.0.1:80 NetworkUnreachable\n[::1]:80 NetworkUnreachable\n"
    );
    assert_eq!(response(&invoke(&mut env, "thread")), "spawned Ok(7)");
}

/// Random syscalls with random arguments (the fuzzer keeps its own memory safe) are all
/// answered: the guest survives every one, the host too, and the next invocation works.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn random_syscalls_are_all_answered() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    for seed in 1..=4 {
        let result = invoke(&mut env, &format!("syscall-fuzz {seed} 5000"));
        assert_eq!(response(&result), "survived 5000", "seed {seed}");
        // Hundreds of distinct unknown numbers, but a bounded tally of them.
        let unsupported = &env.last_stats().unsupported_syscalls;
        assert_eq!(
            unsupported.len(),
            lambda::vmm::RunStats::MAX_UNSUPPORTED_KINDS + 1
        );
        assert!(unsupported[&lambda::vmm::RunStats::OTHER_UNSUPPORTED] > 0);
        assert_eq!(response(&invoke(&mut env, "after")), "after");
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn spare_vms_serve_cold_starts() {
    let backend = kvm_backend();
    let backend = backend.with_spare_vms(1);
    let mut env = backend.create_stdio(&stdio_config("echo")).unwrap();
    // The first start finds no spare (nothing asked for 128 MB yet) and orders one.
    assert_eq!(response(&invoke(&mut env, "first")), "first");
    assert!(!env.last_stats().spare_vm);
    assert_eq!(backend.wait_for_spare_vms(128), 1, "the spare VM was made");
    assert_eq!(backend.spare_vms_ready(128), 1);
    assert_eq!(response(&invoke(&mut env, "second")), "second");
    assert!(env.last_stats().spare_vm);
    assert_eq!(backend.spare_hits_and_misses(), (1, 1));
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_filesystem_behaves_like_linux() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    assert_eq!(
        response(&invoke(&mut env, "files")),
        "write: ok\npwrite: 5\npread: world\nseek-read: HELLO world\nmkdir: ok\nrename: ok\n\
         list: b.txt\nsize: 11\nunlink: ok\nrmdir: ok\ntask-read: true\n\
         task-write: error ReadOnlyFilesystem\noutside: error NotFound\ncwd: /var/task\n"
    );
}

/// A guest that makes the kernel see a `syscall` instruction where its program has none (by
/// calling into the middle of another instruction, and by jumping to the ring-0 stub with a
/// forged return address) cannot make the VMM rewrite those bytes: the next invocation of the
/// same function, in a new VM of the same program image, runs the program's code unchanged.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_hostile_invocation_cannot_change_the_code_the_next_one_runs() {
    let backend = kvm_backend();
    let mut env = environment(&backend, "misbehave");
    let before = response(&invoke(&mut env, "code-bytes"));
    assert_eq!(before, "48b80f05c39090909090");
    for _ in 0..2 {
        assert_eq!(response(&invoke(&mut env, "forge-sites")), "forged");
        assert_eq!(response(&invoke(&mut env, "code-bytes")), before);
    }
}
