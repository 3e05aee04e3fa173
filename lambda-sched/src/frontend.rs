//! The frontend: invoke a function synchronously (`RequestResponse`), asynchronously
//! (`Event`) or as a dry run (`DryRun`).
//!
//! Each request is resolved by the [control plane](crate::control_plane) to one function
//! version and its payload checked against the limit of its type. Then a synchronous request
//! runs on the [data plane](crate::data_plane) and gets the function's answer; an asynchronous
//! one is put in the [async queue](crate::async_queue) and acknowledged (202); a dry run checks
//! that a concurrency permit would be had and runs nothing (204).

use std::sync::atomic::Ordering;

use lambda_core::limits::{MAX_ASYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES};
use lambda_core::{Invocation, ResponseStream, new_request_id};

use crate::async_queue::AsyncQueue;
use crate::data_plane::{DataPlane, InvokeResponse};
use crate::error::{Error, Result};

/// Lambda's `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvocationType {
    /// Synchronous: run the function and return its response (HTTP 200).
    #[default]
    RequestResponse,
    /// Asynchronous: queue the event and acknowledge at once (HTTP 202).
    Event,
    /// Check the function, the payload and the limits; run nothing (HTTP 204).
    DryRun,
}

impl InvocationType {
    /// The name as Lambda spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationType::RequestResponse => "RequestResponse",
            InvocationType::Event => "Event",
            InvocationType::DryRun => "DryRun",
        }
    }
}

/// An invocation request: Lambda's `Invoke` API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeRequest {
    /// `name`, `name:qualifier`, a partial ARN or a full ARN.
    pub function_name: String,
    /// A version number, `$LATEST` or an alias.
    pub qualifier: Option<String>,
    /// How to invoke.
    pub invocation_type: InvocationType,
    /// Whether to return the last 4 KB of the log (`X-Amz-Log-Type: Tail`, synchronous only).
    pub log_tail: bool,
    /// The client context, passed to the function on synchronous invocations.
    pub client_context: Option<String>,
    /// The event.
    pub payload: Vec<u8>,
    /// Where the response goes as the function produces it (`InvokeWithResponseStream`);
    /// synchronous invocations only (an `Event` or `DryRun` runs nothing to stream). With a
    /// stream, the body goes to it and [`InvokeResponse::payload`] stays empty, whether the
    /// runtime answered in streaming mode or all at once (see
    /// [`Invocation::response_stream`]); a function error is still in
    /// [`InvokeResponse::function_error`] and its payload.
    pub response_stream: Option<ResponseStream>,
}

impl InvokeRequest {
    /// A synchronous invocation of `function_name` with `payload`.
    pub fn new(function_name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        InvokeRequest {
            function_name: function_name.into(),
            qualifier: None,
            invocation_type: InvocationType::RequestResponse,
            log_tail: false,
            client_context: None,
            payload: payload.into(),
            response_stream: None,
        }
    }

    /// An asynchronous invocation of `function_name` with `payload`.
    pub fn event(function_name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        InvokeRequest::new(function_name, payload).with_invocation_type(InvocationType::Event)
    }

    /// Sets the qualifier.
    pub fn with_qualifier(mut self, qualifier: impl Into<String>) -> Self {
        self.qualifier = Some(qualifier.into());
        self
    }

    /// Sets the invocation type.
    pub fn with_invocation_type(mut self, invocation_type: InvocationType) -> Self {
        self.invocation_type = invocation_type;
        self
    }

    /// Asks for the log tail.
    pub fn with_log_tail(mut self) -> Self {
        self.log_tail = true;
        self
    }

    /// Sets the client context.
    pub fn with_client_context(mut self, context: impl Into<String>) -> Self {
        self.client_context = Some(context.into());
        self
    }

    /// Streams the response to `stream` as the function produces it.
    pub fn with_response_stream(mut self, stream: ResponseStream) -> Self {
        self.response_stream = Some(stream);
        self
    }
}

fn check_payload(size: usize, invocation_type: InvocationType) -> Result<()> {
    let limit = match invocation_type {
        InvocationType::Event => MAX_ASYNC_PAYLOAD_BYTES,
        _ => MAX_SYNC_PAYLOAD_BYTES,
    };
    if size > limit {
        return Err(Error::RequestTooLarge {
            size,
            limit,
            invocation_type: invocation_type.as_str(),
        });
    }
    Ok(())
}

/// The `Invoke` API: resolves, checks and then runs, queues or only checks the request.
pub(crate) fn invoke(
    data: &DataPlane,
    queue: &AsyncQueue,
    request: InvokeRequest,
) -> Result<InvokeResponse> {
    let InvokeRequest {
        function_name,
        qualifier,
        invocation_type,
        log_tail,
        client_context,
        payload,
        response_stream,
    } = request;
    match invocation_type {
        InvocationType::DryRun => {
            let resolved = data
                .control
                .resolve_static(&function_name, qualifier.as_deref())?;
            check_payload(payload.len(), invocation_type)?;
            data.counting
                .check(&resolved.function.name, &resolved.function.slots)?;
            Ok(InvokeResponse::accepted(204, new_request_id()))
        }
        InvocationType::Event => {
            let resolved = data
                .control
                .resolve_static(&function_name, qualifier.as_deref())?;
            check_payload(payload.len(), invocation_type)?;
            let request_id = new_request_id();
            queue.enqueue(
                request_id.clone(),
                resolved.function.name.clone(),
                resolved.qualifier,
                payload,
                data.clock.now(),
            );
            data.counters.async_accepted.fetch_add(1, Ordering::Relaxed);
            Ok(InvokeResponse::accepted(202, request_id))
        }
        InvocationType::RequestResponse => {
            let resolved = data.control.resolve(&function_name, qualifier.as_deref())?;
            check_payload(payload.len(), invocation_type)?;
            let mut invocation = Invocation::new(payload);
            invocation.client_context = client_context;
            invocation.response_stream = response_stream;
            data.run(&resolved, invocation, log_tail)
        }
    }
}
