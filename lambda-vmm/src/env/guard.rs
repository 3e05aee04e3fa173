//! The micro-VM backend's own panic boundary: a panic in creating an environment or running
//! an invocation (a bug of this crate, whatever the guest did) becomes an error of that call
//! instead of unwinding into the caller, whoever the caller is (the scheduler guards its calls
//! too; a host application driving environments directly gets the same).

use std::panic::{AssertUnwindSafe, catch_unwind};

use lambda_core::EnvironmentError;

/// Runs `call`; a panic becomes [`EnvironmentError::panicked`] naming what was being done.
pub(crate) fn contained<T>(
    doing: &str,
    call: impl FnOnce() -> Result<T, EnvironmentError>,
) -> Result<T, EnvironmentError> {
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|payload| Err(EnvironmentError::panicked(doing, payload.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_values_pass_through() {
        let error = contained::<()>("invoking", || panic!("kernel bug")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "execution environment failed: the backend panicked while invoking: kernel bug"
        );
        assert_eq!(contained("invoking", || Ok(5)).unwrap(), 5);
    }
}
