//! One event to run.

use crate::request_id::new_request_id;

/// One invocation of a function: the event payload and the context Lambda hands the runtime.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invocation {
    /// The request id (`Lambda-Runtime-Aws-Request-Id`), unique per invocation.
    pub request_id: String,
    /// The event, as bytes (usually JSON).
    pub payload: Vec<u8>,
    /// The function ARN the caller invoked (`Lambda-Runtime-Invoked-Function-Arn`).
    pub invoked_function_arn: Option<String>,
    /// The X-Ray trace header (`Lambda-Runtime-Trace-Id`).
    pub trace_id: Option<String>,
    /// The client context of a mobile SDK caller (`Lambda-Runtime-Client-Context`).
    pub client_context: Option<String>,
    /// The Cognito identity of the caller (`Lambda-Runtime-Cognito-Identity`).
    pub cognito_identity: Option<String>,
}

impl Invocation {
    /// An invocation of `payload` with a fresh request id and no further context.
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Invocation {
            request_id: new_request_id(),
            payload: payload.into(),
            invoked_function_arn: None,
            trace_id: None,
            client_context: None,
            cognito_identity: None,
        }
    }
}
