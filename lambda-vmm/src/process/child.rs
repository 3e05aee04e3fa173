//! A function's process: spawned in a process group of its own with exactly the variables
//! given, killed with everything it started, reaped on drop.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// A running (or exited, not yet dropped) function process.
#[derive(Debug)]
pub(super) struct ChildProcess {
    child: std::process::Child,
    exit: Option<ExitStatus>,
    killed: bool,
}

/// What to connect the child's standard streams to.
pub(super) struct Streams {
    pub(super) stdin: Stdio,
    pub(super) stdout: Stdio,
    pub(super) stderr: Stdio,
}

impl ChildProcess {
    /// Starts `program` with only the variables `env`, in `cwd`, on at most `cpus` of the
    /// host's CPUs (`None`: all of them), as the leader of a new process group (so that [`kill`](Self::kill)
    /// reaches anything it starts).
    pub(super) fn spawn(
        program: &Path,
        env: &[(String, String)],
        cwd: &Path,
        cpus: Option<usize>,
        streams: Streams,
    ) -> io::Result<ChildProcess> {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(env.iter().map(|(key, value)| (key, value)))
            .current_dir(cwd)
            .process_group(0)
            .stdin(streams.stdin)
            .stdout(streams.stdout)
            .stderr(streams.stderr);
        // A program file just written (an extracted `bootstrap`) can be briefly held open for
        // writing by a child another thread is forking at that moment: exec then fails with
        // ETXTBSY until that child has exec'd too. Retry for up to a second.
        let mut attempts = 0;
        let child = loop {
            let spawned = match cpus {
                Some(cpus) => crate::host::spawn_on_cpus(cpus, || command.spawn()),
                None => command.spawn(),
            };
            match spawned {
                Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        Ok(ChildProcess {
            child,
            exit: None,
            killed: false,
        })
    }

    /// The process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin, stdout and stderr pipes, when they were piped.
    pub(super) fn take_pipes(
        &mut self,
    ) -> (
        Option<std::process::ChildStdin>,
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        (
            self.child.stdin.take(),
            self.child.stdout.take(),
            self.child.stderr.take(),
        )
    }

    /// The exit status, if the process has ended (reaping it).
    pub(super) fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Kills the process group with SIGKILL and reaps the leader. Idempotent.
    pub(super) fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            crate::host::kill_process_group(self.child.id());
        }
        if self.exit.is_none() {
            self.exit = self.child.wait().ok();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Read};
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    use super::*;

    fn spawn(program: &Path, env: &[(String, String)]) -> ChildProcess {
        ChildProcess::spawn(
            program,
            env,
            Path::new("/"),
            Some(1),
            Streams {
                stdin: Stdio::null(),
                stdout: Stdio::piped(),
                stderr: Stdio::null(),
            },
        )
        .unwrap()
    }

    #[test]
    fn kill_reaches_grandchildren() {
        // The script starts a sleeping grandchild that holds stdout; killing the group must
        // end both, so reading stdout reaches end of file at once.
        let script = std::env::temp_dir().join(format!("grandchild-{}.sh", std::process::id()));
        std::fs::write(&script, "#!/bin/sh\nsleep 30 &\necho started\nsleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = spawn(&script, &[("PATH".into(), "/bin:/usr/bin".into())]);
        let (_, stdout, _) = child.take_pipes();
        // The script says when the grandchild is running.
        let mut stdout = std::io::BufReader::new(stdout.unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "started\n");
        assert!(child.try_wait().is_none());
        let started = Instant::now();
        child.kill();
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(child.try_wait().is_some());
        let _ = std::fs::remove_file(&script);
    }

    #[test]
    fn environment_is_exactly_the_given_variables() {
        let mut child = spawn(Path::new("/usr/bin/env"), &[("ONLY".into(), "this".into())]);
        let (_, stdout, _) = child.take_pipes();
        let mut text = String::new();
        stdout.unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "ONLY=this\n");
        // `env` closes its stdout just before it exits: wait for the exit rather than race
        // a kill against it.
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "env did not exit"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(status.success());
    }
}
