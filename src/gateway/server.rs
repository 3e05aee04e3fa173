//! The listener and its connections: hyper serves HTTP/1.1 on a small tokio runtime; each
//! request's body is read (within its limit and the body timeout) and the request is then
//! run on a blocking thread, since the service's calls block for as long as a function runs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use lambda_sched::Service;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::api_error::ApiError;
use super::catalog::Catalog;
use super::code_store::CodeStore;
use super::config::GatewayConfig;
use super::context::Context;
use super::dispatch::dispatch;
use super::error::GatewayError;
use super::invoke_stream::{self, Piece, Start, StreamBody};
use super::message::{Request, Response};
use super::route::{MAX_CONTROL_BODY, Operation, route};
use super::signature::{check_head, verify};
use super::stall::WriteStall;

/// Request bodies are counted against `max_body_bytes_in_flight` in units of this many
/// bytes (a semaphore's permits are `u32`).
const BODY_UNIT: usize = 1024;

/// A running server of Lambda's API. Dropping it (or [`Gateway::shutdown`]) stops it.
#[derive(Debug)]
pub struct Gateway {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Gateway {
    /// Binds `config.listen` and serves `service` on it from background threads.
    pub fn start(service: Arc<Service>, config: GatewayConfig) -> Result<Gateway, GatewayError> {
        if config.max_connections == 0 || config.max_blocking_threads == 0 {
            return Err(GatewayError::Config(
                "max_connections and max_blocking_threads must be positive".into(),
            ));
        }
        if config.max_body_bytes_in_flight < MAX_CONTROL_BODY {
            return Err(GatewayError::Config(format!(
                "max_body_bytes_in_flight must be at least {MAX_CONTROL_BODY} bytes, the largest body an operation takes"
            )));
        }
        let context = Arc::new(Context {
            service,
            store: CodeStore::open(config.code_dir.as_deref())?,
            catalog: Catalog::default(),
            base_image: config.base_image.clone(),
            credentials: config.credentials.clone(),
            open_function_urls: config.open_function_urls,
            max_code_bytes: config.max_code_bytes,
            changes: Mutex::new(()),
            bodies: Arc::new(Semaphore::new(
                config.max_body_bytes_in_flight.div_ceil(BODY_UNIT),
            )),
        });
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| GatewayError::Listen {
                address: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(GatewayError::Runtime)?;
        listener
            .set_nonblocking(true)
            .map_err(GatewayError::Runtime)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(config.max_blocking_threads)
            .thread_name("lambda-gateway")
            .enable_all()
            .build()
            .map_err(GatewayError::Runtime)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(GatewayError::Runtime)?
        };
        let (stop, stopped) = watch::channel(false);
        runtime.spawn(accept(listener, context, config, stopped));
        Ok(Gateway {
            local_addr,
            stop,
            runtime: Some(runtime),
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes connections and waits up to a second for requests in
    /// progress (an invocation still running then finishes unobserved).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped inside another tokio runtime, where blocking is not allowed: the
                // gateway's threads finish in the background.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Accepts connections until stopped, at most `max_connections` at once.
async fn accept(
    listener: tokio::net::TcpListener,
    context: Arc<Context>,
    config: GatewayConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stopped.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let body_timeout = config.body_timeout;
        let header_timeout = config.header_timeout;
        let write_timeout = config.write_timeout;
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let context = context.clone();
                async move { Ok::<_, Infallible>(serve(context, peer, body_timeout, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                // A client may stop writing once its request is sent and still wait for the
                // answer.
                .half_close(true)
                .serve_connection(
                    TokioIo::new(WriteStall::new(stream, write_timeout)),
                    service,
                );
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {}
            }
            drop(permit);
        });
    }
}

/// Answers one request.
async fn serve(
    context: Arc<Context>,
    peer: SocketAddr,
    body_timeout: Duration,
    request: hyper::Request<Incoming>,
) -> hyper::Response<HttpBody> {
    let request_id = lambda_core::new_request_id();
    let (parts, body) = request.into_parts();
    let operation = match route(parts.method.as_str(), parts.uri.path()) {
        Ok(operation) => operation,
        Err(error) => return into_http(error.response(), &request_id, true),
    };
    let signer = context.signer_for(&operation);
    if let Some(credentials) = signer
        && let Err(error) = check_head(credentials, &parts.headers, SystemTime::now())
    {
        // Refused on its headers: the body is not read.
        return into_http(error.response(), &request_id, true);
    }
    let limit = operation.body_limit();
    // A declared length over the limit is refused before any of the body is read.
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        let error = ApiError::too_large(limit, operation.name());
        return into_http(error.response(), &request_id, true);
    }
    // The body's room among all bodies held at once: its declared length, else its limit.
    let room = declared.map_or(limit, |length| length as usize);
    let units = u32::try_from(room.div_ceil(BODY_UNIT)).unwrap_or(u32::MAX);
    let read = async {
        // Held until the request is answered (for a stream, until its invocation ends).
        let room = context.bodies.clone().acquire_many_owned(units).await.ok();
        (room, Limited::new(body, limit).collect().await)
    };
    let collected = tokio::time::timeout(body_timeout, read).await;
    let (room, body) = match collected {
        Ok((room, Ok(body))) => (room, body.to_bytes()),
        Ok((_, Err(error))) => {
            let response = if error.is::<http_body_util::LengthLimitError>() {
                ApiError::too_large(limit, operation.name())
            } else {
                ApiError::invalid_content(format!("the request body could not be read: {error}"))
            };
            return into_http(response.response(), &request_id, true);
        }
        Err(_) => {
            let error = ApiError::invalid_content(format!(
                "the request body did not arrive within {body_timeout:?}"
            ));
            return into_http(error.response(), &request_id, true);
        }
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        peer,
        request_id: request_id.clone(),
    };
    if let Operation::InvokeWithResponseStream(reference) = &operation {
        let reference = reference.clone();
        return serve_stream(context, operation, reference, request, room).await;
    }
    let ran = tokio::task::spawn_blocking(move || {
        let _room = room;
        check_signature(&context, &operation, &request)?;
        dispatch(&context, operation, &request)
    })
    .await;
    let response = match ran {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.response(),
        // A handler panicked: this request fails, the gateway goes on.
        Err(join) => {
            ApiError::service(format!("the request failed inside the gateway: {join}")).response()
        }
    };
    into_http(response, &request_id, false)
}

/// Verifies `request`'s signature, when `operation` must be signed (on a blocking thread:
/// it hashes the whole body).
fn check_signature(
    context: &Context,
    operation: &Operation,
    request: &Request,
) -> Result<(), ApiError> {
    match context.signer_for(operation) {
        Some(credentials) => verify(credentials, request, SystemTime::now()),
        None => Ok(()),
    }
}

/// The body of an answer: whole, or an event stream written as it comes.
type HttpBody = UnsyncBoxBody<Bytes, Infallible>;

/// Runs an `InvokeWithResponseStream` on a blocking thread and answers with its stream.
async fn serve_stream(
    context: Arc<Context>,
    operation: Operation,
    reference: String,
    request: Request,
    room: Option<OwnedSemaphorePermit>,
) -> hyper::Response<HttpBody> {
    let request_id = request.request_id.clone();
    let (sender, pieces) = invoke_stream::channel();
    // A panic on the blocking thread drops `sender`: `start` then answers ServiceException.
    drop(tokio::task::spawn_blocking(move || {
        let _room = room;
        if let Err(error) = check_signature(&context, &operation, &request) {
            let _ = sender.send(Piece::End(Box::new(Err(error))));
            return;
        }
        invoke_stream::run(&context, &request, &reference, sender);
    }));
    match invoke_stream::start(pieces).await {
        Start::Whole(response) => into_http(response, &request_id, false),
        Start::Stream(body) => stream_http(body, &request_id),
    }
}

/// hyper's response for a streamed answer.
fn stream_http(body: StreamBody, request_id: &str) -> hyper::Response<HttpBody> {
    let mut response = hyper::Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(invoke_stream::EVENT_STREAM),
    );
    if let Ok(id) = hyper::header::HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", id);
    }
    response
}

/// hyper's response for `response`; `close` ends the connection after it (a body was left
/// unread).
fn into_http(response: Response, request_id: &str, close: bool) -> hyper::Response<HttpBody> {
    let mut builder = hyper::Response::builder().status(response.status);
    let mut has_id = false;
    for (name, value) in &response.headers {
        has_id |= name.eq_ignore_ascii_case("x-amzn-requestid");
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !has_id {
        builder = builder.header("x-amzn-RequestId", request_id);
    }
    if close {
        builder = builder.header("Connection", "close");
    }
    builder
        .body(Full::new(Bytes::from(response.body)).boxed_unsync())
        .unwrap_or_else(|error| {
            // A handler produced a header hyper refuses (handlers check what guests send).
            let message = format!("the gateway built an invalid response: {error}");
            let body = ApiError::service(message).response().body;
            let mut fallback = hyper::Response::new(Full::new(Bytes::from(body)).boxed_unsync());
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
