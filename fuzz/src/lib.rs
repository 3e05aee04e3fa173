//! What the fuzz targets share.

use std::sync::OnceLock;

/// Whether to print what each input gave (`FUZZ_PRINT` set, as `fuzz.sh repro` does).
pub fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("FUZZ_PRINT").is_some())
}
