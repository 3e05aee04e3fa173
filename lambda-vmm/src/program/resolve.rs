//! What runs when a file is executed, as Linux's `execve` finds it: a `#!` script's
//! interpreters followed to an ELF program, and that program's own interpreter
//! (`PT_INTERP`). The files come from whoever executes: the function's package when an
//! environment starts, the environment's file system when the program calls `execve`.

use std::sync::Arc;

use super::error::LoadError;
use super::exec_cache::ExecCache;
use super::image::ProgramImage;
use super::script;

/// Where the executable files a start or an `execve` names are found.
pub trait ProgramFiles {
    /// The executable file at the absolute guest `path`, or why it cannot be run.
    fn executable(&self, path: &str) -> Result<Arc<[u8]>, Unrunnable>;
}

/// Why a file cannot be executed: Linux's error number, and words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrunnable {
    /// What `execve` answers (`ENOENT`, `EACCES`, ...).
    pub errno: i32,
    /// Why, for an error message ("is not in the function's package").
    pub reason: String,
}

impl Unrunnable {
    /// A file that cannot be run for `reason`, answering `errno`.
    pub fn new(errno: i32, reason: impl Into<String>) -> Unrunnable {
        Unrunnable {
            errno,
            reason: reason.into(),
        }
    }
}

/// Why a program cannot be started from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The file is a `#!` script that cannot be started: its line, or the interpreter it
    /// names.
    Script {
        /// The script.
        path: String,
        /// Why.
        reason: String,
        /// What `execve` answers.
        errno: i32,
    },
    /// The program's `PT_INTERP` interpreter cannot be loaded.
    Interpreter {
        /// The path the program names.
        interpreter: String,
        /// Why.
        reason: String,
        /// What `execve` answers.
        errno: i32,
    },
    /// The file itself is not a program this kernel runs (`ENOEXEC`).
    Program(LoadError),
}

impl ResolveError {
    /// What `execve` answers for it.
    pub fn errno(&self) -> i32 {
        match self {
            ResolveError::Script { errno, .. } | ResolveError::Interpreter { errno, .. } => *errno,
            ResolveError::Program(LoadError::TooLarge { .. }) => libc::ENOMEM,
            ResolveError::Program(_) => libc::ENOEXEC,
        }
    }
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Script { path, reason, .. } => {
                write!(f, "cannot run the script {path}: {reason}")
            }
            ResolveError::Interpreter {
                interpreter,
                reason,
                ..
            } => write!(f, "the program's interpreter {interpreter} {reason}"),
            ResolveError::Program(error) => error.fmt(f),
        }
    }
}

/// The program that runs when the file `path`, holding `bytes`, is executed with `argv`:
/// for a `#!` script, the interpreter it names (through up to
/// [`script::MAX_SCRIPT_DEPTH`] scripts, else `ELOOP`), with Linux's argument vector
/// `[interpreter, argument?, script, argv[1..]]`; for a dynamically linked program, with its
/// interpreter from `files`. With a `cache`, files it checked before are not checked again.
pub fn resolve(
    files: &impl ProgramFiles,
    path: &str,
    bytes: Arc<[u8]>,
    argv: Vec<Vec<u8>>,
    cache: Option<&ExecCache>,
) -> Result<ProgramImage, ResolveError> {
    let mut argv = argv;
    let mut path = path.to_string();
    let mut bytes = bytes;
    let mut depth = 0;
    while script::is_script(&bytes) {
        if depth == script::MAX_SCRIPT_DEPTH {
            return Err(ResolveError::Script {
                path,
                reason: format!(
                    "it passes through more than {} #! interpreters (a loop?)",
                    script::MAX_SCRIPT_DEPTH
                ),
                errno: libc::ELOOP,
            });
        }
        depth = depth.saturating_add(1);
        let shebang = script::shebang(&bytes, &path).map_err(|error| match error {
            LoadError::Script { path, reason } => ResolveError::Script {
                path,
                reason,
                errno: libc::ENOEXEC,
            },
            other => ResolveError::Program(other),
        })?;
        bytes = files
            .executable(&shebang.interpreter)
            .map_err(|missing| ResolveError::Script {
                path: path.clone(),
                reason: format!("its interpreter {} {}", shebang.interpreter, missing.reason),
                errno: missing.errno,
            })?;
        // Linux's order: the interpreter, its argument, the script, then the script's own
        // arguments after its name.
        let mut next = vec![shebang.interpreter.clone().into_bytes()];
        next.extend(shebang.argument.map(String::into_bytes));
        next.push(path.into_bytes());
        next.extend(argv.into_iter().skip(1));
        argv = next;
        path = shebang.interpreter;
    }
    let program = match cache {
        Some(cache) => cache.parse(&bytes),
        None => ProgramImage::parse(&bytes),
    };
    let program = program.map_err(|error| {
        if depth == 0 {
            ResolveError::Program(error)
        } else {
            ResolveError::Script {
                path: path.clone(),
                reason: format!("it cannot be run as a program: {error}"),
                errno: libc::ENOEXEC,
            }
        }
    })?;
    let program = program.started_as(path, argv);
    let Some(interpreter) = program.interpreter_path().map(str::to_string) else {
        return Ok(program);
    };
    let fail = |reason: String, errno: i32| ResolveError::Interpreter {
        interpreter: interpreter.clone(),
        reason,
        errno,
    };
    let bytes = files
        .executable(&interpreter)
        .map_err(|missing| fail(missing.reason, missing.errno))?;
    let loaded = match cache {
        Some(cache) => cache.parse_interpreter(&bytes),
        None => ProgramImage::parse_interpreter(&bytes),
    };
    let loaded =
        loaded.map_err(|error| fail(format!("cannot be loaded: {error}"), libc::ELIBBAD))?;
    Ok(program.with_interpreter(loaded))
}
