//! The errors the service returns, named after Lambda's exceptions.
//!
//! An [`Error`] means the request was refused or could not be carried out: Lambda answers
//! these with a 4xx or 5xx status. A function that ran and failed is not an `Error`: it is a
//! response with a [`lambda_core::FunctionError`] (HTTP 200 with `X-Amz-Function-Error`).

use std::fmt;
use std::time::Duration;

/// Why an invocation was throttled (`TooManyRequestsException.Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleReason {
    /// The account's concurrency limit (default 1,000), shared by all functions without
    /// reserved concurrency, is in use.
    ConcurrentInvocationLimitExceeded,
    /// The function's reserved concurrency is in use, or is 0 (the function is disabled).
    ReservedFunctionConcurrentInvocationLimitExceeded,
    /// The function's scale-up rate (1,000 new environments per 10 s) is exhausted.
    FunctionInvocationRateLimitExceeded,
    /// No worker has the memory for a new environment even after evicting idle ones.
    /// (Lambda's fleet is elastic and never says this; an engine with fixed workers must.)
    WorkerCapacityExceeded,
}

impl ThrottleReason {
    /// The reason's name as Lambda spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::ConcurrentInvocationLimitExceeded => {
                "ConcurrentInvocationLimitExceeded"
            }
            ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
            ThrottleReason::FunctionInvocationRateLimitExceeded => {
                "FunctionInvocationRateLimitExceeded"
            }
            ThrottleReason::WorkerCapacityExceeded => "WorkerCapacityExceeded",
        }
    }
}

impl fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused or failed request, with Lambda's exception name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `ResourceNotFoundException` (404): no such function, version, alias or mapping.
    #[error("ResourceNotFoundException: {message}")]
    ResourceNotFound {
        /// What was not found.
        message: String,
    },
    /// `InvalidParameterValueException` (400): a parameter is out of range or malformed.
    #[error("InvalidParameterValueException: {message}")]
    InvalidParameterValue {
        /// Which parameter, and what would be accepted.
        message: String,
    },
    /// `RequestTooLargeException` (413): the payload is over the limit for its invocation type.
    #[error(
        "RequestTooLargeException: the request payload has {size} bytes; \
         {invocation_type} invocations accept at most {limit} bytes"
    )]
    RequestTooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The limit in bytes (6 MB synchronous, 1 MB asynchronous).
        limit: usize,
        /// The invocation type the limit belongs to.
        invocation_type: &'static str,
    },
    /// `TooManyRequestsException` (429): a concurrency or rate limit is in the way.
    #[error("TooManyRequestsException ({reason}): {message}; retry after {retry_after:?}")]
    TooManyRequests {
        /// Which limit.
        reason: ThrottleReason,
        /// When a retry may succeed (the `Retry-After` header).
        retry_after: Duration,
        /// The limit and its current value.
        message: String,
    },
    /// `ResourceConflictException` (409): the resource exists already, or is in use.
    #[error("ResourceConflictException: {message}")]
    ResourceConflict {
        /// What conflicts.
        message: String,
    },
    /// `ServiceException` (500): the service could not run the request: the backend failed
    /// to create an environment, or the service is shutting down.
    #[error("ServiceException: {message}")]
    Service {
        /// What failed.
        message: String,
    },
}

impl Error {
    /// Lambda's name for this exception, e.g. `"TooManyRequestsException"`.
    pub fn exception_name(&self) -> &'static str {
        match self {
            Error::ResourceNotFound { .. } => "ResourceNotFoundException",
            Error::InvalidParameterValue { .. } => "InvalidParameterValueException",
            Error::RequestTooLarge { .. } => "RequestTooLargeException",
            Error::TooManyRequests { .. } => "TooManyRequestsException",
            Error::ResourceConflict { .. } => "ResourceConflictException",
            Error::Service { .. } => "ServiceException",
        }
    }

    /// The HTTP status Lambda answers this exception with.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::ResourceNotFound { .. } => 404,
            Error::InvalidParameterValue { .. } => 400,
            Error::RequestTooLarge { .. } => 413,
            Error::TooManyRequests { .. } => 429,
            Error::ResourceConflict { .. } => 409,
            Error::Service { .. } => 500,
        }
    }

    /// Whether retrying the same request later may succeed (throttles and service errors).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::TooManyRequests { .. } | Error::Service { .. })
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Error::ResourceNotFound {
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidParameterValue {
            message: message.into(),
        }
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Error::ResourceConflict {
            message: message.into(),
        }
    }

    pub(crate) fn service(message: impl Into<String>) -> Self {
        Error::Service {
            message: message.into(),
        }
    }

    pub(crate) fn throttled(
        reason: ThrottleReason,
        retry_after: Duration,
        message: impl Into<String>,
    ) -> Self {
        Error::TooManyRequests {
            reason,
            retry_after,
            message: message.into(),
        }
    }
}

/// The service's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_statuses_are_lambdas() {
        let throttle = Error::throttled(
            ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
            Duration::from_secs(1),
            "reserved concurrency 5 is in use",
        );
        assert_eq!(throttle.exception_name(), "TooManyRequestsException");
        assert_eq!(throttle.status_code(), 429);
        assert!(throttle.is_retryable());
        assert!(
            throttle
                .to_string()
                .contains("ReservedFunctionConcurrentInvocationLimitExceeded")
        );
        let large = Error::RequestTooLarge {
            size: 7,
            limit: 6,
            invocation_type: "RequestResponse",
        };
        assert_eq!(large.status_code(), 413);
        assert!(!large.is_retryable());
        assert_eq!(Error::not_found("f").status_code(), 404);
        assert_eq!(
            Error::conflict("f").exception_name(),
            "ResourceConflictException"
        );
    }
}
