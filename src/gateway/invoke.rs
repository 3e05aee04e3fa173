//! `Invoke`: headers to an [`InvokeRequest`], the [`InvokeResponse`] to Lambda's answer.
//!
//! [`InvokeResponse`]: lambda_sched::InvokeResponse

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_sched::{InvocationType, InvokeRequest};

use super::api_error::ApiError;
use super::context::Context;
use super::message::{Request, Response};
use super::route::target;

/// The invocation type `X-Amz-Invocation-Type` names (`RequestResponse` when absent).
fn invocation_type(request: &Request) -> Result<InvocationType, ApiError> {
    match request.header("x-amz-invocation-type") {
        None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
        Some("Event") => Ok(InvocationType::Event),
        Some("DryRun") => Ok(InvocationType::DryRun),
        Some(other) => Err(ApiError::invalid_parameter(format!(
            "X-Amz-Invocation-Type is RequestResponse, Event or DryRun, not {other:?}"
        ))),
    }
}

/// Whether `X-Amz-Log-Type` asks for the log tail.
fn log_tail(request: &Request) -> Result<bool, ApiError> {
    match request.header("x-amz-log-type") {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(ApiError::invalid_parameter(format!(
            "X-Amz-Log-Type is None or Tail, not {other:?}"
        ))),
    }
}

/// `X-Amz-Client-Context`, base64 JSON, decoded for the runtime.
fn client_context(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(encoded) = request.header("x-amz-client-context") else {
        return Ok(None);
    };
    // Lambda's limit is on the header as sent: 3,583 bytes of base64.
    if encoded.len() > 3583 {
        return Err(ApiError::invalid_parameter(
            "X-Amz-Client-Context holds at most 3,583 bytes of base64",
        ));
    }
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::invalid_parameter("X-Amz-Client-Context is not base64 of UTF-8 text")
        })?;
    Ok(Some(decoded))
}

/// Refuses a payload that is not JSON, as Lambda does; an empty payload is allowed.
fn check_json(payload: &[u8]) -> Result<(), ApiError> {
    if payload.is_empty() {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|error| {
            ApiError::invalid_content(format!(
                "Could not parse request body into json: Could not parse payload into json: \
                 {error}"
            ))
        })
}

/// The service's request for an invocation of `reference` (`Invoke` and
/// `InvokeWithResponseStream` read the same headers and payload).
pub(super) fn invoke_request(
    request: &Request,
    reference: &str,
) -> Result<InvokeRequest, ApiError> {
    let (name, qualifier) = target(request, reference)?;
    let invocation_type = invocation_type(request)?;
    let log_tail = log_tail(request)?;
    let client_context = client_context(request)?;
    check_json(&request.body)?;
    Ok(InvokeRequest {
        function_name: name,
        qualifier,
        invocation_type,
        log_tail,
        client_context,
        payload: request.body.to_vec(),
        response_stream: None,
    })
}

/// `POST /2015-03-31/functions/{reference}/invocations`.
pub(super) fn invoke(
    context: &Context,
    request: &Request,
    reference: &str,
) -> Result<Response, ApiError> {
    let answer = context
        .service
        .invoke(invoke_request(request, reference)?)?;
    let function_error = answer.function_error_header();
    let mut response = Response {
        status: answer.status_code,
        headers: Vec::new(),
        body: answer.payload,
    };
    if answer.status_code == 200 {
        response = response.with_header("Content-Type", "application/json");
    }
    if let Some(version) = answer.executed_version {
        response = response.with_header("X-Amz-Executed-Version", version.to_string());
    }
    if let Some(error) = function_error {
        response = response.with_header("X-Amz-Function-Error", error);
    }
    if let Some(tail) = answer.log_result {
        response = response.with_header("X-Amz-Log-Result", STANDARD.encode(tail));
    }
    // The invocation's own id, which its logs and REPORT carry, replaces the gateway's.
    Ok(response.with_header("x-amzn-RequestId", answer.request_id))
}
