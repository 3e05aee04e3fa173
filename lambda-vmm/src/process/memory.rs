//! `Max Memory Used` of a process: its resident set high-water mark (`VmHWM`).

/// The peak resident memory of process `pid` in MB (rounded up), from `/proc/<pid>/status`;
/// `None` once the process has exited (an exited process has no memory to report).
pub(super) fn max_memory_used_mb(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm_kb(&status).map(|kb| u32::try_from(kb.div_ceil(1024)).unwrap_or(u32::MAX))
}

/// The `VmHWM:` figure in kB.
fn parse_vm_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_high_water_mark() {
        let status = "Name:\tx\nVmPeak:\t 10000 kB\nVmHWM:\t    2049 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm_kb(status), Some(2049));
        assert_eq!(parse_vm_hwm_kb("Name: zombie\n"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let mb = max_memory_used_mb(std::process::id()).unwrap();
        assert!((1..100_000).contains(&mb), "{mb}");
        assert_eq!(max_memory_used_mb(u32::MAX), None);
    }
}
