//! The development backend: functions as child processes (being written).

/// Runs functions as plain child processes (being written).
pub struct ProcessBackend;
