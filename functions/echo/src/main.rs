//! `echo`: copies stdin to stdout verbatim and exits 0.
//!
//! The smallest one-shot stdio function: the baseline for cold-start and invoke benchmarks
//! and for checking that payload bytes survive the trip unchanged.

use std::io::{self, Read, Write};

fn main() -> io::Result<()> {
    // Read everything first, then write once: the fewest syscalls (each one is a VM exit).
    let mut payload = Vec::new();
    io::stdin().lock().read_to_end(&mut payload)?;
    let mut out = io::stdout().lock();
    out.write_all(&payload)?;
    out.flush()
}
