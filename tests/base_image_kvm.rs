//! Programs as people build them, over a base image on the KVM backend: dynamically linked C
//! (libm, `dlopen`) and a dynamically linked `lambda_runtime` function, and the errors for
//! images and interpreters that cannot be used.

mod common;

use std::path::{Path, PathBuf};

use common::{base_image, function, kvm_backend, stdio_config};
use lambda::core::{Backend, CodeLocation, Contract, EnvironmentError, FunctionConfig, Invocation};
use lambda::vmm::MicroVmBackend;

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lambda-image-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs one-shot `program` over `image` with `payload`; its response.
fn run_once(backend: &MicroVmBackend, config: FunctionConfig, payload: &str) -> String {
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new(payload)).unwrap();
    let response = result.outcome.response().unwrap_or_else(|| {
        panic!(
            "expected a response, got {:?}; log: {}",
            result.outcome,
            String::from_utf8_lossy(&result.log_tail)
        )
    });
    String::from_utf8_lossy(response).into_owned()
}

fn create_error(backend: &MicroVmBackend, config: &FunctionConfig) -> String {
    match backend.create(config) {
        Err(EnvironmentError::Code(message)) => message,
        Err(other) => panic!("expected a code error, got {other}"),
        Ok(_) => panic!("expected a code error, got an environment"),
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn dynamically_linked_c_programs_run_over_a_base_image() {
    let backend = kvm_backend();
    let image = base_image();
    let hello = stdio_config("hello-dynamic").with_base_image(&image);
    assert_eq!(run_once(&backend, hello, "Ada"), "Hello from C, Ada!");
    // libm linked, libm again through dlopen, and the C library's getpid.
    let maths = stdio_config("dynamic-c").with_base_image(&image);
    assert_eq!(
        run_once(&backend, maths, "2.25"),
        r#"{"cos":-0.628174,"sqrt":1.500000,"pid":1}"#
    );
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn dynamically_linked_runtime_api_functions_serve_warm() {
    let backend = kvm_backend();
    let image = base_image();
    for (program, expected) in [
        ("runtime-rust-dynamic", r#"{"count":2,"echo":{"n":2}}"#),
        ("runtime-c-dynamic", r#"{"n":2}"#),
    ] {
        let config = FunctionConfig::new(program, CodeLocation::Executable(function(program)))
            .with_contract(Contract::RuntimeApi)
            .with_base_image(&image);
        let mut env = backend.create(&config).unwrap();
        for n in 1..=2 {
            let result = env
                .invoke(Invocation::new(format!(r#"{{"n":{n}}}"#)))
                .unwrap();
            let response = result
                .outcome
                .response()
                .map(|r| String::from_utf8_lossy(r).into_owned());
            if n == 2 {
                assert_eq!(response.as_deref(), Some(expected), "{program}");
            } else {
                assert!(response.is_some(), "{program}: {:?}", result.outcome);
            }
        }
    }
}

/// A copy of `hello-dynamic` whose `PT_INTERP` names `interpreter` (same length as the real
/// `/lib64/ld-linux-x86-64.so.2`).
fn with_interpreter(dir: &Path, interpreter: &str) -> PathBuf {
    const REAL: &[u8] = b"/lib64/ld-linux-x86-64.so.2\0";
    assert_eq!(interpreter.len() + 1, REAL.len());
    let mut bytes = std::fs::read(function("hello-dynamic")).unwrap();
    let at = bytes
        .windows(REAL.len())
        .position(|w| w == REAL)
        .expect("hello-dynamic names the usual dynamic linker");
    bytes[at..at + interpreter.len()].copy_from_slice(interpreter.as_bytes());
    let path = dir.join(format!("names-{}", interpreter.replace('/', "_")));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn unusable_images_and_interpreters_are_refused_before_any_vm_exists() {
    let backend = kvm_backend();
    let image = base_image();
    let dir = tempdir("bad");
    let config = |program: &Path, image: &Path| {
        stdio_config("hello-dynamic")
            .with_code(CodeLocation::Executable(program.to_path_buf()))
            .with_base_image(image)
    };
    let hello = function("hello-dynamic");

    // No base image at all.
    let error = create_error(&backend, &stdio_config("hello-dynamic"));
    assert!(error.contains("no base image"), "{error}");
    // An image that does not exist, or is a file.
    let missing = dir.join("missing");
    let error = create_error(&backend, &config(&hello, &missing));
    assert!(
        error.contains(&format!("cannot use {}", missing.display())),
        "{error}"
    );
    let error = create_error(&backend, &config(&hello, &hello));
    assert!(error.contains("not a directory"), "{error}");

    // An interpreter the image does not have.
    let program = with_interpreter(&dir, "/lib64/ld-linux-x86-64.so.9");
    let error = create_error(&backend, &config(&program, &image));
    assert!(
        error.contains("/lib64/ld-linux-x86-64.so.9") && error.contains("cannot be found"),
        "{error}"
    );
    // One outside the image is looked for inside it: `..` stops at the image's root.
    let program = with_interpreter(&dir, "/../../../../../usr/bin/env");
    let error = create_error(&backend, &config(&program, &image));
    assert!(error.contains("cannot be found"), "{error}");

    // A small image whose interpreter is not executable, then not an ELF file.
    let small = dir.join("small");
    std::fs::create_dir_all(small.join("lib64")).unwrap();
    let ld = small.join("lib64/ld-linux-x86-64.so.2");
    std::fs::copy(image.join("lib64/ld-linux-x86-64.so.2"), &ld).unwrap();
    let chmod = |mode: &str| {
        assert!(
            std::process::Command::new("chmod")
                .arg(mode)
                .arg(&ld)
                .status()
                .unwrap()
                .success()
        );
    };
    chmod("644");
    let error = create_error(&backend, &config(&hello, &small));
    assert!(error.contains("is not an executable file"), "{error}");
    std::fs::write(&ld, b"#!/bin/sh\n").unwrap();
    chmod("755");
    let error = create_error(&backend, &config(&hello, &small));
    assert!(
        error.contains("cannot be loaded") && error.contains("not an ELF"),
        "{error}"
    );
    // A static program as the interpreter: not position-independent.
    std::fs::copy(function("hello-c"), &ld).unwrap();
    let error = create_error(&backend, &config(&hello, &small));
    assert!(error.contains("not position-independent"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
