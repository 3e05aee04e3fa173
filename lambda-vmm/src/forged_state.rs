//! Test support for the checks made of state read back from a snapshot file: a copy of a
//! state its own methods made, changed as a forger would, must be refused, saying why.

/// Asserts that `check` refuses a copy of `good` that `forge` changed, with a reason that
/// contains `because`.
pub(crate) fn assert_refused<T: Clone>(
    good: &T,
    forge: impl FnOnce(&mut T),
    check: impl FnOnce(&T) -> Result<(), String>,
    because: &str,
) {
    let mut forged = good.clone();
    forge(&mut forged);
    let why = check(&forged).expect_err(because);
    assert!(why.contains(because), "{why}");
}
