//! Builds the guest programs in `functions/` and tells the package where they are.
//!
//! Examples, tests and benches find them with `env!("LAMBDA_FUNCTIONS_DIR")`, a directory
//! holding one static x86-64 executable per program (see `functions/README.md`). The Rust
//! guests are a separate Cargo workspace built by a nested `cargo build` with its own target
//! dir, flags and a cleaned environment, so nothing of the host build leaks into the guests
//! (or the reverse). The C guests are compiled with `gcc` directly.
//!
//! It also sets `cfg(skip_kvm_tests)` when asked to with `LAMBDA_SKIP_KVM_TESTS=1`.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guests are x86-64 Linux programs whatever the host build targets.
const GUEST_TRIPLE: &str = "x86_64-unknown-linux-gnu";
/// Static glibc executables; for Rust this means static-pie.
const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static";
/// Binaries of the functions workspace, copied out under their own names.
const RUST_PROGRAMS: &[&str] = &["echo", "hello", "misbehave", "runtime-loop", "runtime-rust"];
/// Output name, source file in `functions/c`, and how to link it.
const C_PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("hello-c", "hello.c", &["-static", "-no-pie"]),
    ("hello-c-pie", "hello.c", &["-static-pie", "-fPIE"]),
    ("hello-dynamic", "hello.c", &[]),
    ("dynamic-c", "dynamic.c", &["-lm"]),
    ("runtime-c-dynamic", "runtime.c", &[]),
    ("runtime-c", "runtime.c", &["-static", "-no-pie"]),
    ("memory-c", "memory.c", &["-static", "-no-pie"]),
    (
        "threads-c",
        "threads.c",
        &["-static", "-no-pie", "-pthread"],
    ),
    (
        "signals-c",
        "signals.c",
        &["-static", "-no-pie", "-pthread"],
    ),
    ("exec-c", "exec.c", &["-static", "-no-pie", "-pthread"]),
    ("fork-c", "fork.c", &["-static", "-no-pie", "-pthread"]),
];
/// C++ guests (`g++`, dynamically linked against libstdc++): output name, source file in
/// `functions/c`, and how to link it.
const CXX_PROGRAMS: &[(&str, &str, &[&str])] = &[("cpp-dynamic", "words.cc", &["-pthread"])];
/// Go guests: output name, package directory in `functions/go` (a module of its own,
/// standard library only), and whether cgo is on (`go build`'s default on a host with a C
/// compiler: then `net` links against glibc, and the program is dynamically linked).
const GO_PROGRAMS: &[(&str, &str, bool)] = &[
    ("go-goroutines", "goroutines", false),
    ("go-runtime", "runtime", false),
    ("go-spawn", "spawn", false),
    ("go-runtime-cgo", "runtime", true),
];
/// Variables the outer cargo sets for build scripts (or that `cargo clippy` sets) which
/// would change what the nested build does. `CARGO*` is handled by `leaks_into_guests`.
const LEAKED_VARS: &[&str] = &[
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let sources = manifest_dir.join("functions");
    watch(&sources);

    let out = target_dir(&manifest_dir).join("functions");
    let bin = out.join("bin");
    fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("cannot create {}: {e}", bin.display()));

    let built = cargo_build(&sources, &out.join("cargo"), STATIC_RUSTFLAGS, &[]);
    for name in RUST_PROGRAMS {
        install(&built.join(name), &bin.join(name));
    }
    // The same echo as a fixed-address ET_EXEC, to test the loader's non-PIE path.
    let nopie_flags = format!("{STATIC_RUSTFLAGS} -C relocation-model=static");
    let built = cargo_build(
        &sources,
        &out.join("cargo-nopie"),
        &nopie_flags,
        &["-p", "echo"],
    );
    install(&built.join("echo"), &bin.join("echo-nopie"));
    // The `lambda_runtime` function as a plain `cargo build` makes it: dynamically linked
    // against glibc, for the base-image tests.
    let built = cargo_build(
        &sources,
        &out.join("cargo-dynamic"),
        "",
        &["-p", "runtime-rust"],
    );
    install(
        &built.join("runtime-rust"),
        &bin.join("runtime-rust-dynamic"),
    );

    for (name, source, link) in C_PROGRAMS {
        gcc(&sources.join("c").join(source), link, &bin.join(name));
    }
    for (name, source, link) in CXX_PROGRAMS {
        compile(
            "g++",
            &sources.join("c").join(source),
            link,
            &bin.join(name),
        );
    }
    go_programs(&sources.join("go"), &out.join("go"), &bin);

    println!("cargo:rustc-env=LAMBDA_FUNCTIONS_DIR={}", bin.display());
    // Where the tests keep the base image `functions/base-image/build.sh` makes (they build
    // it there when it is missing).
    println!(
        "cargo:rustc-env=LAMBDA_BASE_IMAGE_DIR={}",
        target_dir(&manifest_dir).join("base-image").display()
    );
    skip_kvm_tests_if_asked();
}

/// Builds the Go guests with the host's `go` (static with `CGO_ENABLED=0`, dynamic with cgo),
/// with a cache under the target dir and no network. Without Go the build fails and says how to install it,
/// unless `LAMBDA_SKIP_GO_TESTS=1` asks to build without them: then `cfg(skip_go_tests)`
/// turns the tests that run them into ignored ones.
fn go_programs(sources: &Path, out: &Path, bin: &Path) {
    println!("cargo::rustc-check-cfg=cfg(skip_go_tests)");
    println!("cargo::rerun-if-env-changed=LAMBDA_SKIP_GO_TESTS");
    if env::var_os("LAMBDA_SKIP_GO_TESTS").is_some_and(|value| value == "1") {
        println!("cargo::rustc-cfg=skip_go_tests");
        return;
    }
    for (name, package, cgo) in GO_PROGRAMS {
        let dest = bin.join(name);
        let tmp = temp_path(&dest);
        let mut command = clean_command(OsStr::new("go"));
        command
            .current_dir(sources)
            .args(["build", "-trimpath", "-o"])
            .arg(&tmp)
            .arg(format!("./{package}"))
            .env("CGO_ENABLED", if *cgo { "1" } else { "0" })
            .env("GOCACHE", out.join("cache"))
            .env("GOPATH", out.join("path"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GO111MODULE", "on");
        run(command, "go build of the Go guest programs in functions/go");
        rename(&tmp, &dest);
    }
}

/// Sets `cfg(skip_kvm_tests)` when the tests are built with `LAMBDA_SKIP_KVM_TESTS=1`, the
/// explicit opt-out that turns the KVM tests into ignored ones (as `lambda-vmm/build.rs`
/// does for that crate's tests; see `lambda-vmm/tests/kvm_gate`).
fn skip_kvm_tests_if_asked() {
    println!("cargo::rustc-check-cfg=cfg(skip_kvm_tests)");
    println!("cargo::rerun-if-env-changed=LAMBDA_SKIP_KVM_TESTS");
    if env::var_os("LAMBDA_SKIP_KVM_TESTS").is_some_and(|value| value == "1") {
        println!("cargo::rustc-cfg=skip_kvm_tests");
    }
}

/// Reruns this script when guest sources change. Each top-level entry of `functions/` is
/// watched (recursively) rather than the directory itself, so that a `functions/target` left
/// by a manual build there cannot trigger a rebuild on every run. Adding a program means
/// editing `functions/Cargo.toml` or this file, both watched.
fn watch(sources: &Path) {
    let entries =
        fs::read_dir(sources).unwrap_or_else(|e| panic!("cannot read {}: {e}", sources.display()));
    for entry in entries.flatten() {
        let name = entry.file_name();
        let skip = name == "target" || name.to_string_lossy().starts_with('.');
        if !skip && Path::new(&name).extension() != Some(OsStr::new("md")) {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
}

/// The outer build's target dir: `CARGO_TARGET_DIR` if set, else found above `OUT_DIR`
/// (`<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`, which also covers `--target-dir`
/// and config files), else `<manifest>/target`.
fn target_dir(manifest_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        return manifest_dir.join(dir);
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let above_profile = out_dir
        .ancestors()
        .find(|dir| dir.file_name() == Some(OsStr::new("build")))
        .and_then(|build| build.parent()?.parent());
    match above_profile {
        Some(dir) if dir.file_name() == env::var_os("TARGET").as_deref() => {
            dir.parent().unwrap_or(dir).to_path_buf()
        }
        Some(dir) => dir.to_path_buf(),
        None => manifest_dir.join("target"),
    }
}

/// Builds the functions workspace (or the packages in `extra`) and returns the directory
/// holding the binaries.
fn cargo_build(sources: &Path, target_dir: &Path, rustflags: &str, extra: &[&str]) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // At most 2 jobs: the machines have 2 cores and the outer build holds one already.
    let jobs = env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(2)
        .clamp(1, 2);
    let mut command = clean_command(&cargo);
    command
        .args(["build", "--release", "--locked", "--target", GUEST_TRIPLE])
        .arg("--manifest-path")
        .arg(sources.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .arg(format!("-j{jobs}"))
        .args(extra)
        .env("RUSTFLAGS", rustflags);
    run(command, "cargo build of the guest programs in functions/");
    target_dir.join(GUEST_TRIPLE).join("release")
}

fn gcc(source: &Path, link: &[&str], dest: &Path) {
    compile("gcc", source, link, dest);
}

/// Compiles one C or C++ source file with `compiler` (`gcc` or `g++`).
fn compile(compiler: &str, source: &Path, link: &[&str], dest: &Path) {
    let tmp = temp_path(dest);
    let mut command = Command::new(compiler);
    command
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&tmp)
        .arg(source)
        .args(link); // after the source, so that `-l` libraries resolve its symbols
    run(
        command,
        &format!("{compiler} (static linking needs libc6-dev's libc.a; C++ needs g++)"),
    );
    rename(&tmp, dest);
}

/// A command without the variables the outer build leaks; PATH, HOME, CARGO_HOME,
/// RUSTUP_HOME, RUSTUP_TOOLCHAIN and the user's own network settings pass through.
fn clean_command(program: &OsStr) -> Command {
    let mut command = Command::new(program);
    for (key, _) in env::vars_os() {
        if key.to_str().is_some_and(leaks_into_guests) {
            command.env_remove(&key);
        }
    }
    command
}

fn leaks_into_guests(key: &str) -> bool {
    // Registry, proxy and offline settings are the user's, not the outer build's.
    const USER_CARGO: &[&str] = &[
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    let cargo = key.starts_with("CARGO") || key.starts_with("__CARGO");
    let user = key == "CARGO_HOME" || USER_CARGO.iter().any(|p| key.starts_with(p));
    (cargo && !user) || LEAKED_VARS.contains(&key)
}

fn run(mut command: Command, what: &str) {
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound && command.get_program() == "gcc" => panic!(
            "gcc not found: the C guest programs need it; install gcc and libc6-dev \
             (e.g. `apt-get install gcc libc6-dev`)"
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound && command.get_program() == "g++" => panic!(
            "g++ not found: the C++ guest program needs it; install g++ \
             (e.g. `apt-get install g++`)"
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound && command.get_program() == "go" => panic!(
            "go not found: the Go guest programs need it; install Go (e.g. `apt-get install \
             golang-go`), or set LAMBDA_SKIP_GO_TESTS=1 to build without them and skip their tests"
        ),
        Err(e) => panic!("cannot run {:?} for {what}: {e}", command.get_program()),
    };
    if !output.status.success() {
        // Program and arguments only: the Debug form would list every removed variable.
        let mut line = command.get_program().to_string_lossy().into_owned();
        for arg in command.get_args() {
            line = format!("{line} {}", arg.to_string_lossy());
        }
        panic!(
            "{what} failed ({}): {line}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
    }
}

/// Copies a built binary into the output dir. Through a temporary name and a rename, so a
/// test never sees a half-written file and two concurrent builds cannot interleave.
fn install(built: &Path, dest: &Path) {
    let tmp = temp_path(dest);
    fs::copy(built, &tmp)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", built.display(), tmp.display()));
    rename(&tmp, dest);
}

fn temp_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

fn rename(from: &Path, to: &Path) {
    fs::rename(from, to)
        .unwrap_or_else(|e| panic!("cannot rename {} to {}: {e}", from.display(), to.display()));
}
