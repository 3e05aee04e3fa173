//! Shared helpers for the integration tests: where the guest programs are, and the KVM gate.

#![allow(dead_code)]

pub mod http;
#[path = "../../lambda-vmm/tests/kvm_gate/mod.rs"]
mod kvm_gate;
#[allow(unused_imports)] // the gateway API test needs no KVM
pub use kvm_gate::kvm_backend;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use lambda::core::{Backend, CodeLocation, Contract, EnvironmentError, FunctionConfig};
use lambda::vmm::MicroVmBackend;

/// The directory the build script compiled `functions/` into.
pub fn functions_dir() -> PathBuf {
    PathBuf::from(env!("LAMBDA_FUNCTIONS_DIR"))
}

/// The path of one guest program.
pub fn function(name: &str) -> PathBuf {
    functions_dir().join(name)
}

/// A one-shot stdio configuration for guest program `name`.
pub fn stdio_config(name: &str) -> FunctionConfig {
    FunctionConfig::new(
        name.replace(['.'], "-"),
        CodeLocation::Executable(function(name)),
    )
    .with_contract(Contract::Stdio)
    .with_timeout(Duration::from_secs(10))
}

/// The base image the tests use: Debian's glibc, libgcc_s, dash, python3, bash, coreutils,
/// grep, sed, mawk, findutils, curl and libstdc++, as `functions/base-image/build.sh DIR --python --tools
/// libstdc++6` unpacks them (it runs here when
/// the image is missing or lacks one of them, which needs `apt-get` and `dpkg-deb`;
/// `.ci/run` builds it first).
pub fn base_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let dir = PathBuf::from(env!("LAMBDA_BASE_IMAGE_DIR"));
            let packages = std::fs::read_to_string(dir.join(".packages")).unwrap_or_default();
            let has = |package: &str| packages.lines().any(|line| line == package);
            if !has("python3.11-minimal") || !has("libstdc++6") || !has("mawk") {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/functions/base-image/build.sh");
                let status = std::process::Command::new("bash")
                    .arg(script)
                    .arg(&dir)
                    .args(["--python", "--tools", "libstdc++6"])
                    .status()
                    .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
                assert!(
                    status.success(),
                    "{script} {} failed: the base-image tests need it (apt-get, dpkg-deb)",
                    dir.display()
                );
            }
            dir
        })
        .clone()
}

/// An empty directory of its own for a test's files, named by `tag` (unique in its test
/// binary) and the process; removed with what it holds when the guard is dropped, at the end
/// of the test whether it passed or not.
pub fn tempdir(tag: &str) -> TempDir {
    let path = std::env::temp_dir().join(format!("lambda-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    TempDir { path }
}

/// A directory [`tempdir`] made, removed when this is dropped.
pub struct TempDir {
    path: PathBuf,
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A zip package at `dir/name` holding `files`, each executable.
pub fn zip_package(dir: &std::path::Path, name: &str, files: &[(&str, &[u8])]) -> CodeLocation {
    use std::io::Write;
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (file, bytes) in files {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        zip.start_file(*file, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    CodeLocation::Zip(path)
}

/// The message of the code error `backend` refuses `config` with; panics on anything else.
pub fn code_error(backend: &MicroVmBackend, config: &FunctionConfig) -> String {
    match backend.create(config) {
        Err(EnvironmentError::Code(message)) => message,
        Err(other) => panic!("expected a code error, got {other}"),
        Ok(_) => panic!(
            "expected a code error for {:?}, got an environment",
            config.code
        ),
    }
}
