//! Builds the guest's vDSO (`vdso/vdso.c`, a shared object of a few hundred bytes of code)
//! with `gcc` into `$OUT_DIR/vdso.so`, which the crate embeds; and sets `cfg(skip_kvm_tests)`
//! when the tests are built with `LAMBDA_SKIP_KVM_TESTS=1`, the explicit opt-out that turns
//! the KVM tests into ignored ones (see `tests/kvm_gate`), and `cfg(skip_go_tests)` under
//! `LAMBDA_SKIP_GO_TESTS=1` for the tests of the Go guest programs.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skip_kvm_tests)");
    println!("cargo::rerun-if-env-changed=LAMBDA_SKIP_KVM_TESTS");
    if std::env::var_os("LAMBDA_SKIP_KVM_TESTS").is_some_and(|value| value == "1") {
        println!("cargo::rustc-cfg=skip_kvm_tests");
    }
    // The same for the tests that run the Go guest programs, which the root build script
    // does not build under LAMBDA_SKIP_GO_TESTS=1.
    println!("cargo::rustc-check-cfg=cfg(skip_go_tests)");
    println!("cargo::rerun-if-env-changed=LAMBDA_SKIP_GO_TESTS");
    if std::env::var_os("LAMBDA_SKIP_GO_TESTS").is_some_and(|value| value == "1") {
        println!("cargo::rustc-cfg=skip_go_tests");
    }
    build_vdso();
}

/// Compiles the vDSO: position-independent, no libc, no relocations, the exported symbols
/// versioned `LINUX_2.6` (`vdso.map`), one read-and-execute segment (`vdso.lds`).
fn build_vdso() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("vdso");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("vdso.so");
    for file in ["vdso.c", "vdso.map", "vdso.lds"] {
        println!("cargo::rerun-if-changed={}", dir.join(file).display());
    }
    let compiler = std::env::var("LAMBDA_VDSO_CC").unwrap_or_else(|_| "gcc".into());
    println!("cargo::rerun-if-env-changed=LAMBDA_VDSO_CC");
    let status = Command::new(&compiler)
        .current_dir(&dir)
        .args([
            "-O2",
            "-fPIC",
            "-shared",
            "-nostdlib",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fno-builtin",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,--hash-style=both",
            "-Wl,-soname,linux-vdso.so.1",
            "-Wl,--version-script=vdso.map",
            "-Wl,-T,vdso.lds",
            "-Wl,--build-id=none",
            "-Wl,-Bsymbolic",
            "-Wl,-z,noexecstack",
            "-Wl,--no-undefined",
            "-s",
            "vdso.c",
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{compiler}` to build the guest's vDSO ({e}): install gcc (Debian: \
                 apt-get install gcc), or name another C compiler in LAMBDA_VDSO_CC"
            )
        });
    assert!(
        status.success(),
        "`{compiler}` failed to build the vDSO ({status})"
    );
}
