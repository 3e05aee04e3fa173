//! Optional `tracing` spans on the invocation path, behind the crate's `tracing` feature (off
//! by default). With the feature off, [`span!`] expands to nothing: no code, no cost, and its
//! field expressions are not evaluated.

/// Enters an INFO-level span named `$name` with `$field = $value` fields for the rest of the
/// enclosing block, when the `tracing` feature is on.
macro_rules! span {
    ($name:literal $(, $field:ident = $value:expr)* $(,)?) => {
        #[cfg(feature = "tracing")]
        let _span = tracing::info_span!($name $(, $field = $value)*).entered();
    };
}

pub(crate) use span;
