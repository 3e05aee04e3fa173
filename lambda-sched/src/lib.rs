//! The function service (placeholder: the scheduler is being built).
