//! `#!` scripts as programs, the way Linux's `binfmt_script` runs them: a `bootstrap` that
//! starts with `#!INTERPRETER [ARGUMENT]` runs INTERPRETER with the argument vector
//! `[INTERPRETER, ARGUMENT?, SCRIPT, ...]`. The interpreter may be a script itself, a few
//! levels deep.

use super::error::LoadError;

/// Longest `#!` line, its newline included (Linux's `BINPRM_BUF_SIZE`).
pub const MAX_SHEBANG_LINE: usize = 256;
/// Most scripts one start may pass through before reaching a program (Linux stops after
/// five rewrites with `ELOOP`).
pub const MAX_SCRIPT_DEPTH: usize = 5;

/// What a `#!` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    /// The interpreter's path.
    pub interpreter: String,
    /// The one optional argument: the rest of the line, spaces inside kept.
    pub argument: Option<String>,
}

/// Whether `bytes` is a script (starts with `#!`).
pub fn is_script(bytes: &[u8]) -> bool {
    bytes.starts_with(b"#!")
}

/// Reads the `#!` line of `script` (named `path` in errors), which [`is_script`] said is one.
pub fn shebang(script: &[u8], path: &str) -> Result<Shebang, LoadError> {
    let malformed = |why: &str| LoadError::Script {
        path: path.to_string(),
        reason: why.to_string(),
    };
    let head = script.get(..MAX_SHEBANG_LINE).unwrap_or(script);
    let line = match head.iter().position(|&b| b == b'\n') {
        Some(end) => head.get(2..end).unwrap_or_default(),
        // A file that is only the line ends it; a longer one must end it within the limit.
        None if script.len() <= MAX_SHEBANG_LINE => script.get(2..).unwrap_or_default(),
        None => {
            return Err(malformed(&format!(
                "its #! line is longer than {MAX_SHEBANG_LINE} bytes"
            )));
        }
    };
    let line = std::str::from_utf8(line).map_err(|_| malformed("its #! line is not UTF-8"))?;
    let line = line.trim_matches([' ', '\t', '\r']);
    let (interpreter, argument) = match line.split_once([' ', '\t']) {
        Some((interpreter, rest)) => (interpreter, Some(rest.trim_matches([' ', '\t', '\r']))),
        None => (line, None),
    };
    if interpreter.is_empty() {
        return Err(malformed("its #! line names no interpreter"));
    }
    if interpreter.contains('\0') || argument.is_some_and(|a| a.contains('\0')) {
        return Err(malformed("its #! line holds a NUL byte"));
    }
    Ok(Shebang {
        interpreter: interpreter.to_string(),
        argument: argument.filter(|a| !a.is_empty()).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Shebang, LoadError> {
        shebang(text.as_bytes(), "/var/task/bootstrap")
    }

    #[test]
    fn lines_split_as_linux_splits_them() {
        assert_eq!(
            parse("#!/bin/sh\necho hi\n").unwrap(),
            Shebang {
                interpreter: "/bin/sh".into(),
                argument: None
            }
        );
        assert_eq!(
            parse("#! /usr/bin/env  python3 -u \r\n").unwrap(),
            Shebang {
                interpreter: "/usr/bin/env".into(),
                argument: Some("python3 -u".into())
            }
        );
        assert_eq!(parse("#!/bin/sh").unwrap().interpreter, "/bin/sh");
        assert!(is_script(b"#!"));
        assert!(!is_script(b"\x7fELF"));
    }

    #[test]
    fn bad_lines_are_refused_naming_the_script() {
        let long = format!("#!/{}\n", "x".repeat(MAX_SHEBANG_LINE));
        for (text, why) in [
            ("#!\n", "names no interpreter"),
            ("#!   \n", "names no interpreter"),
            (long.as_str(), "longer than 256 bytes"),
            ("#!/bin/sh\0x\n", "NUL"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(
                error.contains("/var/task/bootstrap") && error.contains(why),
                "{error}"
            );
        }
        // A long script whose #! line is short is fine.
        let script = format!("#!/bin/sh\n{}", "echo hi\n".repeat(100));
        assert!(parse(&script).is_ok());
    }
}
