//! One event to run.

use crate::request_id::new_request_id;
use crate::response_stream::ResponseStream;

/// One invocation of a function: the event payload and the context Lambda hands the runtime.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invocation {
    /// The request id (`Lambda-Runtime-Aws-Request-Id`), unique per invocation.
    pub request_id: String,
    /// The event, as bytes (usually JSON).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The function ARN the caller invoked (`Lambda-Runtime-Invoked-Function-Arn`).
    pub invoked_function_arn: Option<String>,
    /// The X-Ray trace header (`Lambda-Runtime-Trace-Id`).
    pub trace_id: Option<String>,
    /// The client context of a mobile SDK caller (`Lambda-Runtime-Client-Context`).
    pub client_context: Option<String>,
    /// The Cognito identity of the caller (`Lambda-Runtime-Cognito-Identity`).
    pub cognito_identity: Option<String>,
    /// Where the response goes as the runtime writes it, for a caller that streams it
    /// (`InvokeWithResponseStream`). Not serialized: a restored invocation has none.
    ///
    /// When set and the runtime answers in streaming mode
    /// (`Lambda-Runtime-Function-Response-Mode: streaming`), each piece of the body is written
    /// to the stream as it arrives (up to
    /// [`MAX_STREAMED_RESPONSE_BYTES`](crate::limits::MAX_STREAMED_RESPONSE_BYTES)) and the
    /// outcome's [`Response`](crate::InvokeOutcome::Response) payload is empty. A response the
    /// runtime sends whole (not in streaming mode) is written to the stream in one piece when
    /// it is complete (unless it is empty), and the outcome's payload is empty too: a caller
    /// that asked to stream always reads the body from the stream.
    ///
    /// When not set, a streamed response is buffered like any other and held to the 6 MB
    /// limit, as Lambda does for a plain `Invoke` of a streaming function.
    #[serde(skip)]
    pub response_stream: Option<ResponseStream>,
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
            response_stream: None,
        }
    }

    /// The invocation with its response streamed to `stream` (see
    /// [`response_stream`](Self::response_stream)).
    pub fn with_response_stream(mut self, stream: ResponseStream) -> Self {
        self.response_stream = Some(stream);
        self
    }
}
