//! `hello`: a one-shot stdio function with a JSON event, a JSON response and a log line.
//!
//! `{"name":"Ada"}` on stdin -> `{"message":"Hello, Ada!"}` on stdout and
//! `hello: greeting Ada` on stderr. A missing (or non-string) name greets "World".
//! Invalid JSON is a function error: a message on stderr and exit status 1.

use std::io::{self, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(err) = io::stdin().lock().read_to_end(&mut input) {
        eprintln!("hello: cannot read stdin: {err}");
        return ExitCode::FAILURE;
    }
    let event: serde_json::Value = match serde_json::from_slice(&input) {
        Ok(event) => event,
        Err(err) => {
            eprintln!("hello: invalid JSON event: {err}");
            return ExitCode::FAILURE;
        }
    };
    let name = event
        .get("name")
        .and_then(|name| name.as_str())
        .unwrap_or("World");
    eprintln!("hello: greeting {name}");
    let response = serde_json::json!({ "message": format!("Hello, {name}!") });
    let mut out = io::stdout().lock();
    if let Err(err) = out
        .write_all(response.to_string().as_bytes())
        .and_then(|()| out.flush())
    {
        eprintln!("hello: cannot write stdout: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
