//! The panic boundary of this crate's environments: `MicroVmBackend::create` and the
//! environments' `invoke` run their work through [`guarded`], so that a panic inside the VMM
//! (a bug, not a guest's doing) reaches a user of `lambda-vmm` as an
//! [`EnvironmentError::Failed`] naming the panic, not as an unwinding panic. After a panic in
//! `invoke`, the caller drops the environment's machine, so the next invocation boots afresh.

use lambda_core::EnvironmentError;

use crate::sync::catch_panic;

/// Runs `call`, the backend doing `during` (`"create"`, `"invoke"`); a panic inside it is
/// caught and becomes `Err` with [`EnvironmentError::panicked`].
pub(crate) fn guarded<T>(during: &str, call: impl FnOnce() -> T) -> Result<T, EnvironmentError> {
    catch_panic(call).map_err(|payload| EnvironmentError::panicked(during, &*payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_returns_is_untouched() {
        let answer: Result<Result<u32, EnvironmentError>, _> = guarded("invoke", || Ok(7));
        assert_eq!(answer.unwrap().unwrap(), 7);
        let inner = guarded("create", || -> Result<(), _> {
            Err(EnvironmentError::Unavailable("no".into()))
        });
        assert!(matches!(
            inner.unwrap(),
            Err(EnvironmentError::Unavailable(_))
        ));
    }

    #[test]
    fn a_panic_becomes_a_failure_naming_it() {
        let mut touched = Vec::new();
        let caught = guarded("invoke", || {
            touched.push(1);
            if touched.len() == 1 {
                panic!("the VMM broke on request {}", 42);
            }
        });
        let error = caught.expect_err("the call panicked");
        assert!(matches!(error, EnvironmentError::Failed { .. }));
        assert_eq!(
            error.to_string(),
            "execution environment failed: the backend panicked during invoke: \
             the VMM broke on request 42"
        );
        // The caller goes on and can clean up what the call touched.
        assert_eq!(touched, [1]);
    }
}
