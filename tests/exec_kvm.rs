//! `execve` on the KVM backend: a program replacing itself keeps what Linux keeps (its
//! descriptors without `FD_CLOEXEC`, ignored signals, its mask, the environment it passes)
//! and loses the rest (other threads, handlers, its memory and FPU state); failing execs
//! answer Linux's errors and the program goes on; and a `#!/bin/sh` bootstrap `exec`s a
//! binary from the function's zip, one-shot and as a Runtime API loop.

mod common;

use common::{base_image, function, kvm_backend, stdio_config, tempdir, zip_package};
use lambda::core::{Backend, Contract, ExecutionEnvironment, FunctionConfig, Invocation};
use lambda::vmm::MicroVmBackend;

/// The `exec-c` program as a zip with the files its checks use, at `memory_mb`.
fn exec_function(dir: &std::path::Path, memory_mb: u32) -> FunctionConfig {
    let program = std::fs::read(function("exec-c")).unwrap();
    let code = zip_package(
        dir,
        "exec.zip",
        &[
            ("bootstrap", &program),
            ("exec-c", &program),
            ("data.txt", b"not a program\n"),
            ("loop.sh", b"#!/var/task/loop.sh\n"),
            ("again.sh", b"#!/var/task/exec-c from-script\n"),
        ],
    );
    stdio_config("exec-c")
        .with_code(code)
        .with_memory_mb(memory_mb)
}

/// Invokes `env` (a `runtime-c` Runtime API loop, which echoes its event) with `{"n":N}`
/// for N from 1 to `count`, checking each answer; returns the first invocation's log.
fn echoes(env: &mut dyn ExecutionEnvironment, count: u32) -> String {
    let mut first_log = String::new();
    for n in 1..=count {
        let event = format!(r#"{{"n":{n}}}"#);
        let result = env.invoke(Invocation::new(event.clone())).unwrap();
        assert_eq!(
            result.outcome.response(),
            Some(event.as_bytes()),
            "{:?}",
            result.outcome
        );
        if n == 1 {
            first_log = String::from_utf8_lossy(&result.log_tail).into_owned();
        }
    }
    first_log
}

/// Runs `config` once with the check `check`; its response.
fn run(backend: &MicroVmBackend, config: &FunctionConfig, check: &str) -> String {
    let mut env = backend.create(config).unwrap();
    let result = env.invoke(Invocation::new(check)).unwrap();
    let response = result.outcome.response().unwrap_or_else(|| {
        panic!(
            "{check}: expected a response, got {:?}; log: {}",
            result.outcome,
            String::from_utf8_lossy(&result.log_tail)
        )
    });
    String::from_utf8_lossy(response).into_owned()
}

/// What the program started by `execve` reports after the check `check`.
fn after(check: &str) -> String {
    format!(
        "pid==tid 1\nfd3 closed\nfd4 open\nusr1 default\nusr2 ignored\nterm blocked\n\
         mxcsr 0x1f80\nargc 5\nargv[0] exec-c\nargv[1] --after\nargv[2] {check}\nargv[3] a\n\
         argv[4] b c\nMARK kept\nexe /var/task/exec-c\n"
    )
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn execve_replaces_the_program_keeping_what_linux_keeps() {
    let backend = kvm_backend();
    let dir = tempdir("replace");
    let config = exec_function(&dir, 128);
    assert_eq!(run(&backend, &config, "replace"), after("replace"));
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn execve_ends_the_other_threads_on_one_vcpu_and_on_two() {
    let backend = kvm_backend();
    let dir = tempdir("threads");
    // At 2048 MB the environment has two vCPUs: the spinning thread runs on the other one
    // and must be stopped there first.
    for memory_mb in [128, 2048] {
        let config = exec_function(&dir, memory_mb);
        assert_eq!(
            run(&backend, &config, "thread"),
            after("thread"),
            "{memory_mb} MB"
        );
        // A second thread's execve: it becomes the program's first thread.
        assert_eq!(
            run(&backend, &config, "from-thread"),
            after("from-thread"),
            "{memory_mb} MB"
        );
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn failing_execs_answer_linux_errors_and_the_program_goes_on() {
    let backend = kvm_backend();
    let dir = tempdir("errors");
    let config = exec_function(&dir, 128);
    assert_eq!(
        run(&backend, &config, "errors"),
        "missing ENOENT\ndirectory EACCES\nnot-a-program ENOEXEC\ntmp-file EACCES\n\
         script-loop ELOOP\nbad-path EFAULT\nbad-argv EFAULT\nhuge-arg E2BIG\n\
         long-path ENAMETOOLONG\nstill running\n"
    );
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn execve_of_a_script_runs_its_interpreter_with_linux_argv() {
    let backend = kvm_backend();
    let dir = tempdir("script");
    let config = exec_function(&dir, 128);
    let response = run(&backend, &config, "script");
    // `#!/var/task/exec-c from-script` run as `again x`: the interpreter, its argument, the
    // script's path, then the script's own arguments after its name.
    assert!(
        response.contains(
            "argc 4\nargv[0] /var/task/exec-c\nargv[1] from-script\n\
             argv[2] /var/task/again.sh\nargv[3] x\n"
        ),
        "{response}"
    );
    assert!(response.contains("exe /var/task/exec-c\n"), "{response}");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_shell_bootstrap_execs_a_binary_from_the_zip() {
    let backend = kvm_backend();
    let dir = tempdir("sh");
    // One-shot: the shell runs a command of its own first, then becomes the program.
    let hello = std::fs::read(function("hello-c")).unwrap();
    let script = b"#!/bin/sh\necho \"bootstrap: starting hello\" >&2\nexec /var/task/hello-c\n";
    let code = zip_package(
        &dir,
        "sh.zip",
        &[("bootstrap", script), ("hello-c", &hello)],
    );
    let config = stdio_config("hello-c")
        .with_code(code)
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new("Ada")).unwrap();
    assert_eq!(result.outcome.response(), Some(&b"Hello from C, Ada!"[..]));
    assert!(String::from_utf8_lossy(&result.log_tail).contains("bootstrap: starting hello"));

    // A Runtime API loop started the way AWS's custom-runtime tutorial starts one: a shell
    // bootstrap that changes directory and `exec`s the runtime by a relative path. The
    // runtime then serves warm invocations.
    let runtime = std::fs::read(function("runtime-c")).unwrap();
    let script = b"#!/bin/sh\ncd /var/task\nexec ./runtime-c \"$@\"\n";
    let code = zip_package(
        &dir,
        "runtime.zip",
        &[("bootstrap", script), ("runtime-c", &runtime)],
    );
    let config = FunctionConfig::new("sh-runtime", code)
        .with_contract(Contract::RuntimeApi)
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    echoes(env.as_mut(), 3);
}

/// The `fork-c` program as a zip (it spawns itself from `/var/task/fork-c`).
fn fork_function(dir: &std::path::Path, memory_mb: u32) -> FunctionConfig {
    let program = std::fs::read(function("fork-c")).unwrap();
    let code = zip_package(
        dir,
        "fork.zip",
        &[("bootstrap", &program), ("fork-c", &program)],
    );
    stdio_config("fork-c")
        .with_code(code)
        .with_memory_mb(memory_mb)
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn child_processes_run_while_their_parent_waits() {
    let backend = kvm_backend();
    let dir = tempdir("fork");
    let config = fork_function(&dir, 128);
    for (check, expected) in [
        (
            "fork",
            "reaped the child yes\nchild exited 7\nglobal 1\n\
             child saw new-pid parent-as-ppid: 1 1\n",
        ),
        (
            "spawn",
            "spawned child wrote: hello from pid>1: yes\nspawned child exited 0\n\
             then EOF: yes\n",
        ),
        ("killed", "child killed by Segmentation fault\n"),
        (
            "sigchld",
            "SIGCHLD handler ran: yes\nwith SIGCHLD ignored: ECHILD\n",
        ),
        ("nested", "child of a child that exited 5 exited 6\n"),
        (
            "errors",
            "waitpid with no child: ECHILD\nparent's write end still open: yes\n\
             and reads back: yes\nfork at depth 16: EAGAIN\n",
        ),
        ("threads", "child whose one thread exited exited 0\n"),
        ("capture", "writer exited 0\ncaptured 200000 bytes\n"),
        ("child-threads", "child with a spinning thread exited 4\n"),
    ] {
        assert_eq!(run(&backend, &config, check), expected, "{check}");
    }
    // With two vCPUs the spinning thread runs on the other one when the main thread forks,
    // or when the child exits.
    let config = fork_function(&dir, 2048);
    assert_eq!(
        run(&backend, &config, "threads"),
        "child whose one thread exited exited 0\n"
    );
    assert_eq!(
        run(&backend, &config, "child-threads"),
        "child with a spinning thread exited 4\n"
    );
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_shell_bootstrap_runs_commands_then_execs_the_runtime() {
    let backend = kvm_backend();
    let dir = tempdir("sh-commands");
    // What custom-runtime bootstraps do: run a command or two (one whose output the script
    // captures, one that fails), then `exec` the runtime.
    let fork = std::fs::read(function("fork-c")).unwrap();
    let runtime = std::fs::read(function("runtime-c")).unwrap();
    let script = b"#!/bin/sh\n\
        /var/task/fork-c --child setup >&2\n\
        greeting=$(/var/task/fork-c --child captured)\n\
        echo \"bootstrap: $greeting\" >&2\n\
        /var/task/missing 2>/dev/null || echo \"bootstrap: missing command, status $?\" >&2\n\
        cd /var/task\n\
        exec ./runtime-c\n";
    let code = zip_package(
        &dir,
        "runtime.zip",
        &[
            ("bootstrap", script),
            ("fork-c", &fork),
            ("runtime-c", &runtime),
        ],
    );
    let config = FunctionConfig::new("sh-commands", code)
        .with_contract(Contract::RuntimeApi)
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    // Init's output is in the first invocation's log.
    let log = echoes(env.as_mut(), 2);
    for line in [
        "setup from pid>1: yes",
        "bootstrap: captured from pid>1: yes",
        "bootstrap: missing command, status 127",
    ] {
        assert!(log.contains(line), "{line:?} not in {log}");
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_runtime_started_as_the_shells_child_serves_while_the_shell_waits() {
    let backend = kvm_backend();
    let dir = tempdir("sh-child");
    // No `exec`: the shell forks the runtime and waits for it for the environment's life.
    let runtime = std::fs::read(function("runtime-c")).unwrap();
    let script = b"#!/bin/sh\ncd /var/task\n./runtime-c\necho unreachable >&2\n";
    let code = zip_package(
        &dir,
        "runtime.zip",
        &[("bootstrap", script), ("runtime-c", &runtime)],
    );
    let config = FunctionConfig::new("sh-child", code)
        .with_contract(Contract::RuntimeApi)
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    echoes(env.as_mut(), 3);
    // A snapshot of it is refused: a child runs while its parent waits.
    let error = backend
        .snapshot(&config)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(error.contains("child process"), "{error}");
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_python_handler_runs_subprocesses() {
    let backend = kvm_backend();
    let dir = tempdir("python");
    // Python's subprocess starts children with vfork and execve, closes descriptors with
    // close_range, and reads the child's output and its exec status through pipes.
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions/python");
    let bootstrap = std::fs::read(source.join("bootstrap")).unwrap();
    let program = std::fs::read(function("fork-c")).unwrap();
    let handler = b"import subprocess\n\
        def lambda_handler(event, context):\n\
        \x20   child = subprocess.run(['/var/task/fork-c', '--child', event['word']],\n\
        \x20                          capture_output=True, text=True)\n\
        \x20   shell = subprocess.run('echo $((6*7)); exit 3', shell=True,\n\
        \x20                          capture_output=True, text=True)\n\
        \x20   try:\n\
        \x20       subprocess.run(['/var/task/missing'])\n\
        \x20       missing = 'ran'\n\
        \x20   except FileNotFoundError:\n\
        \x20       missing = 'FileNotFoundError'\n\
        \x20   return [child.stdout.strip(), child.returncode, shell.stdout.strip(),\n\
        \x20           shell.returncode, missing]\n";
    let code = zip_package(
        &dir,
        "python.zip",
        &[
            ("bootstrap", &bootstrap),
            ("lambda_function.py", handler),
            ("fork-c", &program),
        ],
    );
    let config = FunctionConfig::new("python-subprocess", code)
        .with_contract(Contract::RuntimeApi)
        .with_handler("lambda_function.lambda_handler")
        .with_timeout(std::time::Duration::from_secs(10))
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    for word in ["one", "two"] {
        let result = env
            .invoke(Invocation::new(format!(r#"{{"word":"{word}"}}"#)))
            .unwrap();
        assert_eq!(
            result
                .outcome
                .response()
                .map(String::from_utf8_lossy)
                .as_deref(),
            Some(
                format!(r#"["{word} from pid>1: yes", 0, "42", 3, "FileNotFoundError"]"#).as_str()
            ),
            "{:?}; log: {}",
            result.outcome,
            String::from_utf8_lossy(&result.log_tail)
        );
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn the_aws_tutorial_bash_bootstrap_serves_with_curl() {
    let backend = kvm_backend();
    let dir = tempdir("tutorial");
    // The bootstrap and handler of AWS's custom-runtime tutorial ("Building a custom
    // runtime"), written out here, with `#!/bin/bash` (Amazon Linux's /bin/sh is bash; Debian's
    // dash has no `pipefail`): curl, grep, tr, cut and mktemp from the image, a pipeline in
    // every command substitution, the Runtime API over curl.
    let bootstrap = br#"#!/bin/bash
set -euo pipefail

# Initialization - load function handler
source $LAMBDA_TASK_ROOT/"$(echo $_HANDLER | cut -d. -f1).sh"

# Processing
while true
do
  HEADERS="$(mktemp)"
  # Get an event. The HTTP request will block until one is received
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")

  # Extract request ID by scraping response headers received above
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)

  # Run the function handler
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")

  # Send the response
  curl -sS "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response" -d "$RESPONSE" > /dev/null
done
"#;
    let handler = br#"function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}
"#;
    let code = zip_package(
        &dir,
        "tutorial.zip",
        &[("bootstrap", bootstrap), ("function.sh", handler)],
    );
    let config = FunctionConfig::new("tutorial", code)
        .with_contract(Contract::RuntimeApi)
        .with_handler("function.handler")
        .with_timeout(std::time::Duration::from_secs(20))
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    for n in 1..=2 {
        let event = format!(r#"{{"key":"value {n}"}}"#);
        let result = env.invoke(Invocation::new(event.clone())).unwrap();
        assert_eq!(
            result
                .outcome
                .response()
                .map(String::from_utf8_lossy)
                .as_deref(),
            Some(format!("Echoing request: '{event}'").as_str()),
            "{:?}; log: {}",
            result.outcome,
            String::from_utf8_lossy(&result.log_tail)
        );
        assert!(String::from_utf8_lossy(&result.log_tail).contains(&event));
    }
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
fn a_bash_bootstrap_using_the_common_tools_runs() {
    let backend = kvm_backend();
    let dir = tempdir("tools");
    // Pipelines of sort, uniq, awk, sed, find, xargs, paste, wc and cat; mkdir -p and
    // appends in /tmp; a subshell's status; a Python one-liner: one process at a time.
    let script = r#"#!/bin/bash
set -euo pipefail
read -r event || true
echo "event: $event" >&2
words=$(echo "the quick brown fox jumps over the lazy dog the end" | tr ' ' '\n' | sort | uniq -c | sort -rn | head -3 | awk '{print $2 ":" $1}' | paste -sd, -)
count=$(printf '%s\n' a b c d e | wc -l)
sedout=$(echo "hello world" | sed -e 's/world/lambda/' -e 's/^/>> /')
files=$(find /var/task -maxdepth 1 -type f | sort | xargs -n1 basename | paste -sd' ' -)
mkdir -p /tmp/work && cd /tmp/work
for i in 1 2 3; do echo "line $i" >> out.txt; done
lines=$(cat out.txt | wc -l)
date_ok=$(date +%Y >/dev/null && echo yes)
env_ok=$(env | grep -c '^AWS_LAMBDA_FUNCTION_NAME=' || true)
sub=$( (echo inner; exit 3) || echo "status $?")
json=$(python3 -c 'import json,sys; print(json.dumps({"sum": sum(range(10))}))')
bg_result=$( { sleep 0.01; echo bg-done; } )
printf '{"words":"%s","count":%d,"sed":"%s","files":"%s","lines":%d,"date":"%s","env":%d,"sub":"%s","json":%s,"bg":"%s"}' \
  "$words" "$count" "$sedout" "$files" "$lines" "$date_ok" "$env_ok" "$sub" "$json" "$bg_result"
"#;
    let code = zip_package(
        &dir,
        "tools.zip",
        &[("bootstrap", script.as_bytes()), ("data.txt", b"data\n")],
    );
    let config = stdio_config("tools")
        .with_code(code)
        .with_timeout(std::time::Duration::from_secs(60))
        .with_base_image(base_image());
    let mut env = backend.create(&config).unwrap();
    let result = env.invoke(Invocation::new("hi")).unwrap();
    assert_eq!(
        result
            .outcome
            .response()
            .map(String::from_utf8_lossy)
            .as_deref(),
        Some(
            "{\"words\":\"the:3,quick:1,over:1\",\"count\":5,\"sed\":\">> hello lambda\",\
             \"files\":\"bootstrap data.txt\",\"lines\":3,\"date\":\"yes\",\"env\":1,\
             \"sub\":\"inner\nstatus 3\",\"json\":{\"sum\": 45},\"bg\":\"bg-done\"}"
        ),
        "{:?}; log: {}",
        result.outcome,
        String::from_utf8_lossy(&result.log_tail)
    );
}

#[test]
#[cfg_attr(skip_kvm_tests, ignore = "LAMBDA_SKIP_KVM_TESTS=1")]
#[cfg_attr(skip_go_tests, ignore = "LAMBDA_SKIP_GO_TESTS=1")]
fn a_go_program_runs_commands_with_os_exec() {
    let backend = kvm_backend();
    let dir = tempdir("go-spawn");
    let program = std::fs::read(function("go-spawn")).unwrap();
    let fork = std::fs::read(function("fork-c")).unwrap();
    let code = zip_package(
        &dir,
        "go.zip",
        &[("bootstrap", &program), ("fork-c", &fork)],
    );
    let config = stdio_config("go-spawn").with_code(code);
    assert_eq!(
        run(&backend, &config, "gopher"),
        r#"out="gopher from pid>1: yes" missing=true"#
    );
}
