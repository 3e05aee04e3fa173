//! The examples the README tells users to run, run as a user runs them: the main example
//! (`hello`), and `invoke --from-snapshot` in both contracts, with a snapshot file kept
//! between runs and a damaged one refused. `cargo test` builds the examples before it runs
//! any test; to run this binary alone, build them first (`cargo build --release --examples`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The path of example `name`, built beside this test binary (`target/<profile>/examples`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is not built: `cargo test` builds the examples; alone, run `cargo build --release \
         --examples` first",
        path.display()
    );
    path
}

/// What a run of an example printed, and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines_with(&self, text: &str) -> usize {
        self.stderr
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }

    /// Checks a run of `invoke --from-snapshot`: it succeeded with `answers`, one per
    /// invocation, printed `snapshot_line` once, and each REPORT says `Restore Duration`.
    fn assert_restored(&self, answers: &[&str], snapshot_line: &str) {
        assert_eq!(self.code, Some(0), "{}", self.stderr);
        assert_eq!(self.stdout.lines().collect::<Vec<_>>(), answers);
        assert_eq!(self.lines_with(snapshot_line), 1, "{}", self.stderr);
        assert_eq!(self.lines_with("REPORT"), answers.len(), "{}", self.stderr);
        let restores = self.lines_with("Restore Duration");
        assert_eq!(restores, answers.len(), "{}", self.stderr);
        assert_eq!(self.lines_with("Init Duration"), 0, "{}", self.stderr);
    }
}

/// Runs example `name` with `args` (no standard input), to its end.
fn run(name: &str, args: &[&str]) -> Run {
    // Fails with the KVM gate's message, naming the opt-out, where KVM is unusable: the
    // examples would fall back to the process backend, or refuse `--from-snapshot`.
    drop(common::kvm_backend());
    let output = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run example {name}: {error}"));
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn program(name: &str) -> String {
    common::function(name).display().to_string()
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_main_example_runs_in_micro_vms() {
    let run = run("hello", &[]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("backend: KVM micro-VMs"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    assert!(
        run.stdout
            .contains(r#"hello -> {"message":"Hello, micro-VM!"}"#),
        "{}",
        run.stdout
    );
    for count in 1..=3 {
        let line = format!(r#"counter -> {{"count":{count}}}"#);
        assert!(run.stdout.contains(&line), "no {line} in:\n{}", run.stdout);
    }
}

/// Each invocation runs in a new environment restored from the snapshot taken after Init,
/// so the counter every one of them reads is the snapshot's: 1 each time, where one warm
/// environment counts on.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn invoke_from_a_snapshot_restores_each_runtime_api_invocation() {
    let loop_ = program("runtime-loop");
    let event = r#"{"action":"count"}"#;
    let warm = run("invoke", &[&loop_, event, "--runtime-api", "--count", "3"]);
    assert_eq!(warm.code, Some(0), "{}", warm.stderr);
    assert_eq!(
        warm.stdout.lines().collect::<Vec<_>>(),
        [r#"{"count":1}"#, r#"{"count":2}"#, r#"{"count":3}"#]
    );
    assert_eq!(warm.lines_with("Init Duration"), 1, "{}", warm.stderr);

    let restored = run(
        "invoke",
        &[
            &loop_,
            event,
            "--runtime-api",
            "--count",
            "3",
            "--from-snapshot",
        ],
    );
    restored.assert_restored(&[r#"{"count":1}"#; 3], "snapshot: Init");
}

/// A one-shot function restored for each invocation; the snapshot kept in a file is loaded
/// by the next run (no Init), and a damaged file is refused with an error, not run.
#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn invoke_from_a_snapshot_file_runs_one_shot_functions() {
    let dir = common::tempdir("examples-one-shot");
    let file = dir.join("hello.snap").display().to_string();
    let hello = program("hello");
    let event = r#"{"name":"Ada"}"#;
    let args = [
        hello.as_str(),
        event,
        "--count",
        "2",
        "--from-snapshot",
        "--snapshot-file",
        &file,
    ];
    let answers = [r#"{"message":"Hello, Ada!"}"#; 2];

    run("invoke", &args).assert_restored(&answers, "snapshot: written to");
    run("invoke", &args).assert_restored(&answers, "snapshot: loaded from");

    // One byte changed in the middle of the file.
    let mut bytes = std::fs::read(&file).expect("read the snapshot file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&file, &bytes).expect("write the damaged file");
    let damaged = run("invoke", &args);
    assert_eq!(
        damaged.code,
        Some(2),
        "{}{}",
        damaged.stdout,
        damaged.stderr
    );
    assert!(damaged.stdout.is_empty(), "{}", damaged.stdout);
    assert_eq!(damaged.lines_with("REPORT"), 0, "{}", damaged.stderr);
    let refusal = format!(
        "{file}: the snapshot file is corrupt: its checksum does not match its contents; \
         remove it to take a new one"
    );
    assert_eq!(damaged.stderr.trim_end(), refusal);
}
