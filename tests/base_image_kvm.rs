//! Programs as people build them, over a base image on the KVM backend: dynamically linked C
//! (libm, `dlopen`), a dynamically linked `lambda_runtime` function, `#!` script bootstraps
//! (`/bin/sh`, Python with a handler imported from `/var/task`), and the errors for images,
//! interpreters and scripts that cannot be used.

mod common;

use std::path::{Path, PathBuf};

use common::{base_image, code_error, function, kvm_backend, stdio_config, tempdir, zip_package};
use lambda::core::{Backend, CodeLocation, Contract, ErrorType, FunctionConfig, Invocation};
use lambda::vmm::MicroVmBackend;

/// A Runtime API function of guest program `program`, over the tests' base image.
fn runtime_over_image(program: &str) -> FunctionConfig {
    FunctionConfig::new(program, CodeLocation::Executable(function(program)))
        .with_contract(Contract::RuntimeApi)
        .with_base_image(base_image())
}

/// Runs a one-shot function of `config` once with `payload`; its response.
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
fn a_cpp_program_with_exceptions_and_threads_runs_over_the_image() {
    let backend = kvm_backend();
    let config = stdio_config("cpp-dynamic").with_base_image(base_image());
    assert_eq!(
        run_once(&backend, config, "hello world"),
        r#"{"distinct":8,"sum":60}"#
    );
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
#[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
fn a_go_runtime_built_with_cgo_serves_over_the_image() {
    let backend = kvm_backend();
    let mut env = backend
        .create(&runtime_over_image("go-runtime-cgo"))
        .unwrap();
    for n in 1..=2 {
        let result = env
            .invoke(Invocation::new(format!(r#"{{"n":{n}}}"#)))
            .unwrap();
        assert_eq!(
            result.outcome.response(),
            Some(format!(r#"{{"count":{n},"echo":{{"n":{n}}},"go":true}}"#).as_bytes()),
            "{:?}",
            result.outcome
        );
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn dynamically_linked_runtime_api_functions_serve_warm() {
    let backend = kvm_backend();
    for (program, expected) in [
        ("runtime-rust-dynamic", r#"{"count":2,"echo":{"n":2}}"#),
        ("runtime-c-dynamic", r#"{"n":2}"#),
    ] {
        let mut env = backend.create(&runtime_over_image(program)).unwrap();
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

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_dynamic_programs_library_syscalls_enter_the_vmm_directly_once_seen() {
    // libc.so.6's `syscall` instructions (mapped from the image, found by decoding the file)
    // are rewritten like the program's own: once the first invocation has run each of them,
    // every syscall of the next one enters the VMM directly.
    let backend = kvm_backend();
    let config = runtime_over_image("runtime-c-dynamic");
    let mut env = backend.create_runtime_api(&config).unwrap();
    for n in 1..=3 {
        let result = env.run(Invocation::new(format!(r#"{{"n":{n}}}"#))).unwrap();
        assert!(result.outcome.response().is_some(), "{:?}", result.outcome);
    }
    let stats = env.last_stats();
    assert!(stats.syscalls > 0);
    assert_eq!(stats.direct_syscalls, stats.syscalls, "{stats:?}");
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
    let error = code_error(&backend, &stdio_config("hello-dynamic"));
    assert!(error.contains("no base image"), "{error}");
    // An image that does not exist, or is a file.
    let missing = dir.join("missing");
    let error = code_error(&backend, &config(&hello, &missing));
    assert!(
        error.contains(&format!("cannot use {}", missing.display())),
        "{error}"
    );
    let error = code_error(&backend, &config(&hello, &hello));
    assert!(error.contains("not a directory"), "{error}");

    // An interpreter the image does not have.
    let program = with_interpreter(&dir, "/lib64/ld-linux-x86-64.so.9");
    let error = code_error(&backend, &config(&program, &image));
    assert!(
        error.contains("/lib64/ld-linux-x86-64.so.9") && error.contains("cannot be found"),
        "{error}"
    );
    // One outside the image is looked for inside it: `..` stops at the image's root (the
    // host has gcc, the image does not).
    let program = with_interpreter(&dir, "/../../../../../usr/bin/gcc");
    let error = code_error(&backend, &config(&program, &image));
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
    let error = code_error(&backend, &config(&hello, &small));
    assert!(error.contains("is not an executable file"), "{error}");
    std::fs::write(&ld, b"#!/bin/sh\n").unwrap();
    chmod("755");
    let error = code_error(&backend, &config(&hello, &small));
    assert!(
        error.contains("cannot be loaded") && error.contains("neither an ELF"),
        "{error}"
    );
    // A static program as the interpreter: not position-independent.
    std::fs::copy(function("hello-c"), &ld).unwrap();
    let error = code_error(&backend, &config(&hello, &small));
    assert!(error.contains("not position-independent"), "{error}");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn shell_script_bootstraps_run_with_the_image_shell() {
    let backend = kvm_backend();
    let dir = tempdir("sh");
    let script = b"#!/bin/sh\nread -r name\nprintf 'Hello from sh, %s!' \"$name\"\necho \"sh: greeted $name\" >&2\n";
    let code = zip_package(&dir, "sh.zip", &[("bootstrap", script)]);
    let config = stdio_config("hello-c")
        .with_code(code)
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new("Ada")).unwrap();
    assert_eq!(result.outcome.response(), Some(&b"Hello from sh, Ada!"[..]));
    assert!(String::from_utf8_lossy(&result.log_tail).contains("sh: greeted Ada"));
}

/// The Python runtime of `functions/python` and its handler, zipped as Lambda takes them.
fn python_function(dir: &Path) -> FunctionConfig {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("functions/python");
    let bootstrap = std::fs::read(source.join("bootstrap")).unwrap();
    let handler = std::fs::read(source.join("lambda_function.py")).unwrap();
    let code = zip_package(
        dir,
        "python.zip",
        &[("bootstrap", &bootstrap), ("lambda_function.py", &handler)],
    );
    FunctionConfig::new("python", code)
        .with_contract(Contract::RuntimeApi)
        .with_handler("lambda_function.lambda_handler")
        .with_timeout(std::time::Duration::from_secs(10))
        .with_base_image(base_image())
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn python_functions_run_unmodified() {
    let backend = kvm_backend();
    let dir = tempdir("python");
    let mut env = backend.create(&python_function(&dir)).unwrap();
    for count in 1..=2 {
        let result = env.invoke(Invocation::new(r#"{"hi":1}"#)).unwrap();
        let response = String::from_utf8_lossy(result.outcome.response().unwrap_or_else(|| {
            panic!(
                "no response: {:?}; log: {}",
                result.outcome,
                String::from_utf8_lossy(&result.log_tail)
            )
        }))
        .into_owned();
        assert_eq!(
            response,
            format!(
                r#"{{"statusCode": 200, "echo": {{"hi": 1}}, "count": {count}, "python": "3.11.2"}}"#
            )
        );
        let log = String::from_utf8_lossy(&result.log_tail);
        assert!(log.contains("handling "), "{log}");
    }
    // An exception in the handler is the invocation's error, and the environment stays warm.
    let result = env.invoke(Invocation::new(r#"{"fail":"boom"}"#)).unwrap();
    let error = result.outcome.error().expect("an error");
    assert_eq!(error.error_type, ErrorType::Function("ValueError".into()));
    assert_eq!(error.message, "boom");
    let result = env.invoke(Invocation::new("{}")).unwrap();
    assert!(result.outcome.response().is_some());
    // `tempfile.TemporaryFile` (an `O_TMPFILE` file), and a file removed while open, are
    // written and read back.
    let result = env
        .invoke(Invocation::new(r#"{"tempfile":"scratch"}"#))
        .unwrap();
    let response = result.outcome.response().unwrap_or_else(|| {
        panic!(
            "no response: {:?}; log: {}",
            result.outcome,
            String::from_utf8_lossy(&result.log_tail)
        )
    });
    assert_eq!(
        response,
        br#"{"tempfile": "scratch", "removed": "scratch"}"#
    );
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn scripts_that_cannot_start_are_refused_naming_the_script() {
    let backend = kvm_backend();
    let dir = tempdir("bad-scripts");
    let long = format!("#!/bin/{}\n", "s".repeat(300));
    for (name, script, with_image, expected) in [
        (
            "no-image",
            "#!/bin/sh\n".to_string(),
            false,
            "no base image",
        ),
        (
            "missing",
            "#!/usr/bin/perl\n".to_string(),
            true,
            "/usr/bin/perl cannot be found",
        ),
        (
            "directory",
            "#!/usr\n".to_string(),
            true,
            "not an executable file",
        ),
        ("long", long, true, "longer than 256 bytes"),
        (
            "loop",
            "#!/var/task/bootstrap\n".to_string(),
            true,
            "more than 5 #! interpreters",
        ),
        ("empty", "#!\n".to_string(), true, "names no interpreter"),
        (
            "text",
            "#!/var/task/notes.txt\n".to_string(),
            true,
            "cannot be run as a program",
        ),
    ] {
        let code = zip_package(
            &dir,
            &format!("{name}.zip"),
            &[
                ("bootstrap", script.as_bytes()),
                ("notes.txt", b"plain text"),
            ],
        );
        let mut config = stdio_config("hello-c").with_code(code);
        if with_image {
            config = config.with_base_image(base_image());
        }
        let error = code_error(&backend, &config);
        assert!(
            error.contains("cannot run the script") && error.contains(expected),
            "{name}: {error}"
        );
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn layers_appear_under_opt_and_later_ones_win() {
    let backend = kvm_backend();
    let dir = tempdir("layers");
    // Layer one, a zip: a Python module and a runner script; layer two, a directory: the
    // same module saying something else.
    let one = zip_package(
        &dir,
        "one.zip",
        &[
            ("python/greeting.py", b"GREETING = 'from layer one'\n"),
            (
                "bin/runner",
                b"#!/bin/sh\nread -r name\nprintf 'runner greets %s' \"$name\"\n",
            ),
        ],
    );
    let CodeLocation::Zip(one) = one else {
        unreachable!()
    };
    let two = dir.join("two");
    std::fs::create_dir_all(two.join("python")).unwrap();
    std::fs::write(
        two.join("python/greeting.py"),
        "GREETING = 'from layer two'\n",
    )
    .unwrap();

    let config = python_function(&dir).with_layer(&one);
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new(r#"{"layer":true}"#)).unwrap();
    assert_eq!(
        result.outcome.response(),
        Some(&br#"{"greeting": "from layer one"}"#[..]),
        "{:?}",
        result.outcome
    );
    let config = python_function(&dir).with_layer(&one).with_layer(&two);
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new(r#"{"layer":true}"#)).unwrap();
    assert_eq!(
        result.outcome.response(),
        Some(&br#"{"greeting": "from layer two"}"#[..])
    );

    // A bootstrap whose interpreter is a layer's script.
    let code = zip_package(&dir, "runs.zip", &[("bootstrap", b"#!/opt/bin/runner\n")]);
    let config = stdio_config("hello-c")
        .with_code(code)
        .with_layer(&one)
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new("Ada")).unwrap();
    assert_eq!(result.outcome.response(), Some(&b"runner greets Ada"[..]));
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn bad_layers_are_refused_naming_them() {
    use std::io::Write;
    let backend = kvm_backend();
    let dir = tempdir("bad-layers");
    let not_zip = dir.join("notes.txt");
    std::fs::write(&not_zip, "plain text").unwrap();
    let missing = dir.join("missing.zip");
    // 251 MB of zeros, a quarter of a megabyte zipped: over the limit with any code.
    let big = dir.join("big.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&big).unwrap());
    zip.start_file("blob", zip::write::SimpleFileOptions::default())
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..251 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
    for (layer, why) in [
        (&not_zip, "not a readable zip archive"),
        (&missing, "No such file"),
        (&big, "over Lambda's limit of 262144000 bytes"),
    ] {
        let config = stdio_config("hello-c").with_layer(layer);
        let error = code_error(&backend, &config);
        assert!(
            error.contains(&format!("cannot use the layer {}", layer.display()))
                && error.contains(why),
            "{error}"
        );
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_python_snapshot_file_restores_over_the_image_it_names() {
    let backend = kvm_backend();
    let dir = tempdir("python-snapshot");
    let config = python_function(&dir);
    let file = dir.join("python.snapshot");
    backend
        .snapshot(&config)
        .expect("snapshot")
        .write_to(&file)
        .expect("write");
    // The file names the image by the configuration; loading attaches it again, so the
    // restored program reads and maps the image's files (`csv` loads `_csv`, an extension
    // module, from the image's lib-dynload) after the restore.
    let snapshot = backend.load_snapshot(&file).expect("load");
    let mut env = backend.restore_runtime_api(&snapshot).expect("restore");
    let result = env.run(Invocation::new(r#"{"import":"csv"}"#)).unwrap();
    assert_eq!(
        result.outcome.response(),
        Some(&br#"{"imported": "csv", "file": "/usr/lib/python3.11/csv.py"}"#[..]),
        "{:?}; log: {}",
        result.outcome,
        String::from_utf8_lossy(&result.log_tail)
    );
    assert!(result.report.restore_duration.is_some());
}
