//! Header names of the Runtime API's `next` answer.

/// The invocation's request id.
pub const REQUEST_ID: &str = "Lambda-Runtime-Aws-Request-Id";
/// The invocation's deadline, in milliseconds since the Unix epoch.
pub const DEADLINE_MS: &str = "Lambda-Runtime-Deadline-Ms";
/// The ARN of the function, version or alias invoked.
pub const INVOKED_FUNCTION_ARN: &str = "Lambda-Runtime-Invoked-Function-Arn";
/// The X-Ray tracing header.
pub const TRACE_ID: &str = "Lambda-Runtime-Trace-Id";
/// The client context of a mobile SDK caller.
pub const CLIENT_CONTEXT: &str = "Lambda-Runtime-Client-Context";
/// The Cognito identity of the caller.
pub const COGNITO_IDENTITY: &str = "Lambda-Runtime-Cognito-Identity";
