//! Lambda's error responses: the exception's name in `x-amzn-ErrorType`, a JSON body with
//! `Type` and `message` (and `Reason` for a throttle), and the status Lambda uses.

use std::time::Duration;

use lambda_sched::Error as ServiceError;
use serde_json::json;

use super::message::Response;

/// A request Lambda's API refuses, or could not serve.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The exception's name, e.g. `ResourceNotFoundException`.
    pub name: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// A throttle's `Reason`.
    pub reason: Option<&'static str>,
    /// A throttle's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// A refusal with `status` and exception `name` (no throttle reason).
    pub fn new(status: u16, name: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            name,
            message: message.into(),
            reason: None,
            retry_after: None,
        }
    }

    /// `InvalidParameterValueException` (400).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterValueException", message)
    }

    /// `InvalidRequestContentException` (400): the body is not what the operation takes.
    pub fn invalid_content(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestContentException", message)
    }

    /// `UnknownOperationException` (404): no operation has this method and path.
    pub fn unknown_operation(message: impl Into<String>) -> Self {
        Self::new(404, "UnknownOperationException", message)
    }

    /// The body is over the operation's limit (413): `RequestTooLargeException` for an
    /// invocation (Lambda names the operation `InvokeFunction`), and
    /// `RequestEntityTooLargeException` for the control plane.
    pub fn too_large(limit: usize, operation: &str) -> Self {
        let (name, operation) = match operation {
            "Invoke" | "FunctionUrl" => ("RequestTooLargeException", "InvokeFunction"),
            "InvokeWithResponseStream" => ("RequestTooLargeException", operation),
            other => ("RequestEntityTooLargeException", other),
        };
        Self::new(
            413,
            name,
            format!("Request must be smaller than {limit} bytes for the {operation} operation"),
        )
    }

    /// `ServiceException` (500).
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(500, "ServiceException", message)
    }

    /// The response Lambda sends for this error.
    pub fn response(&self) -> Response {
        let kind = if self.status >= 500 {
            "Service"
        } else {
            "User"
        };
        let body = match self.reason {
            Some(reason) => json!({"Type": kind, "message": self.message, "Reason": reason}),
            None => json!({"Type": kind, "message": self.message}),
        };
        let mut response =
            Response::json(self.status, &body).with_header("x-amzn-ErrorType", self.name);
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up, as the header takes.
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response = response.with_header("Retry-After", seconds.to_string());
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let status = error.status_code();
        let name = error.exception_name();
        match error {
            ServiceError::TooManyRequests {
                reason,
                retry_after,
                message,
            } => ApiError {
                status,
                name,
                message: format!("Rate Exceeded. {message}"),
                reason: Some(reason.as_str()),
                retry_after: Some(retry_after),
            },
            ServiceError::ResourceNotFound { message }
            | ServiceError::InvalidParameterValue { message }
            | ServiceError::ResourceConflict { message }
            | ServiceError::Service { message } => Self::new(status, name, message),
            other @ ServiceError::RequestTooLarge { .. } => {
                let message = other.to_string();
                let message = message
                    .strip_prefix("RequestTooLargeException: ")
                    .unwrap_or(&message)
                    .to_string();
                Self::new(status, name, message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_sched::ThrottleReason;

    #[test]
    fn a_throttle_carries_its_reason_and_retry_after() {
        let error: ApiError = ServiceError::TooManyRequests {
            reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
            retry_after: Duration::from_millis(1500),
            message: "reserved concurrency 0".into(),
        }
        .into();
        let response = error.response();
        assert_eq!(response.status, 429);
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header("x-amzn-ErrorType").as_deref(),
            Some("TooManyRequestsException")
        );
        assert_eq!(header("Retry-After").as_deref(), Some("2"));
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body["Reason"],
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        assert_eq!(body["Type"], "User");
    }

    #[test]
    fn service_errors_are_typed_service() {
        let response = ApiError::service("backend down").response();
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            (response.status, body["Type"].as_str()),
            (500, Some("Service"))
        );
    }
}
