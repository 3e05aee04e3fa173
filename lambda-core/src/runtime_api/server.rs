//! The Runtime API of one execution environment: a sans-IO server over any number of
//! connections.

use std::collections::{BTreeMap, VecDeque};

use super::connection::{Connection, ConnectionId, INBOX_BYTES, Streaming};
use super::error_report::{ERROR_TYPE_HEADER, error_from_report, error_from_trailers};
use super::reader::ReadEvent;
use super::request::{Body, Request};
use super::response::{CONTINUE, Response};
use super::route::Route;
use super::{MAX_BODY_BYTES, headers};
use crate::invocation::Invocation;
use crate::limits::MAX_STREAMED_RESPONSE_BYTES;
use crate::outcome::{ErrorType, FunctionError, InvokeOutcome};

/// Where an environment's runtime is in its lifecycle, as its Runtime API sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    /// The runtime has not asked for an invocation yet.
    Init,
    /// Init is over and no invocation is in flight (one may be queued, or a `next` parked).
    Idle,
    /// An invocation has been handed to the runtime and has no result yet.
    Invoking,
    /// The runtime reported an init error; the environment is of no further use.
    InitFailed,
}

/// What the runtime did that the host must act on. Take them with
/// [`RuntimeApi::next_event`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ApiEvent {
    /// The runtime asked for its first invocation: Init is over.
    InitDone,
    /// The runtime reported that Init failed (`POST /runtime/init/error`).
    InitError(FunctionError),
    /// The invocation was handed to the runtime: its `next` was answered. The invocation's
    /// Duration starts here.
    InvocationStarted {
        /// The invocation's request id.
        request_id: String,
    },
    /// The runtime finished the invocation: a response, an error it reported, or a response
    /// over the size limit (`Function.ResponseSizeTooLarge`).
    InvocationDone {
        /// The invocation's request id.
        request_id: String,
        /// The result.
        outcome: InvokeOutcome,
    },
}

/// Why [`RuntimeApi::deliver`] refused an invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// An invocation is already queued or in flight; an environment runs one at a time.
    #[error(
        "invocation {0} is still queued or in flight: wait for its InvocationDone event before delivering another"
    )]
    Busy(String),
    /// The runtime reported an init error; the environment must be discarded.
    #[error("the runtime reported an init error: discard this environment and create a new one")]
    InitFailed,
}

/// Most connections the runtime may hold open at once (a runtime needs one or two); past it,
/// [`RuntimeApi::connect`] refuses, as a full listen backlog would.
pub const MAX_CONNECTIONS: usize = 64;

/// Most bytes all connections together may hold: unprocessed input, requests being read and
/// unread responses. Past it, [`RuntimeApi::receive`] accepts fewer bytes (the writer waits,
/// as on a full socket buffer) and a `next` that would redeliver the event in flight is
/// refused. An event and a response of 6 MB each fit with room to spare; a runtime that opens
/// many connections and fills them cannot make the host hold more than this (plus the one
/// event delivered).
pub const MAX_BUFFERED_BYTES: usize = 16 << 20;

/// Why [`RuntimeApi::connect`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the runtime already holds {MAX_CONNECTIONS} connections to the Runtime API")]
pub struct TooManyConnections;

/// An invocation with the deadline the host computed for it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    invocation: Invocation,
    deadline_ms: u64,
    /// Bytes written to the invocation's response stream so far, by every connection
    /// together: a runtime that streams on many connections at once still gets at most
    /// [`MAX_STREAMED_RESPONSE_BYTES`] to its caller.
    #[serde(default)]
    streamed: usize,
}

/// The Runtime API 2018-06-01 of one execution environment, as a state machine with no I/O,
/// threads or clocks. See the [module documentation](super) for how to drive it.
///
/// It serves any number of connections (a runtime may open several, and reopen them); all
/// share one lifecycle:
///
/// - **Init** until the first `GET /runtime/invocation/next`, which emits
///   [`ApiEvent::InitDone`]. `POST /runtime/init/error` during Init answers 202 and emits
///   [`ApiEvent::InitError`]; every later request then gets 403.
/// - **Idle**: a `next` is answered with the queued invocation if the host has delivered
///   one, else it *parks*: nothing is written to that connection until
///   [`deliver`](Self::deliver). Several parked `next`s are served first come, first served.
/// - **Invoking** request id X: `POST /runtime/invocation/X/response` answers 202 and
///   completes the invocation with the body; `.../X/error` answers 202 and completes it with
///   the reported [`FunctionError`]. A body over [`MAX_BODY_BYTES`] answers 413
///   `RequestEntityTooLarge` and completes it with `Function.ResponseSizeTooLarge`.
///   Another id answers 400 `InvalidRequestID`; X again after its result answers 403
///   `InvalidStateTransition`.
/// - **Streaming**: a `.../X/response` with `Lambda-Runtime-Function-Response-Mode: streaming`
///   for an invocation that has a [`ResponseStream`](crate::ResponseStream) is not collected:
///   each piece of its body goes to the stream as soon as it is decoded, up to
///   [`MAX_STREAMED_RESPONSE_BYTES`]. When the body ends the runtime gets 202 and the
///   invocation completes with an empty [`InvokeOutcome::Response`], or with the error its
///   `Lambda-Runtime-Function-Error-Type` / `-Body` trailers report
///   ([`error_from_trailers`](super::error_from_trailers)). Past the limit it completes with
///   `Function.ResponseSizeTooLarge`, nothing more reaches the stream, and the runtime gets 413
///   while the rest of the body is discarded. Without a stream, a streamed response is read
///   whole like any other (6 MB limit, trailers honoured); a response sent whole to an
///   invocation with a stream is written to the stream in one piece (see
///   [`Invocation::response_stream`]). A connection that breaks (closes, or sends broken
///   chunk framing) in the middle of a streamed body leaves the invocation in flight, as for
///   any body cut short; what was streamed stays streamed.
/// - A `next` that arrives while X is in flight is answered at once with X again (same request
///   id, payload and deadline), as the Runtime Interface Emulator does. A runtime that lost the
///   connection its event came on can so pick the invocation up again; X still completes only
///   through a result posted for it.
///
/// Unknown paths answer 404, a wrong method 405 with `Allow`, unreadable requests 400 (431 for
/// an oversized header block, 501 for an unknown transfer encoding) and close the connection.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RuntimeApi {
    function_arn: String,
    phase: Phase,
    /// The invocation in flight (in `Invoking`) or delivered and waiting for a `next`.
    current: Option<Pending>,
    /// The request id of the last invocation that completed.
    last_request_id: Option<String>,
    connections: BTreeMap<ConnectionId, Connection>,
    next_connection: u64,
    parked: VecDeque<ConnectionId>,
    events: VecDeque<ApiEvent>,
}

impl RuntimeApi {
    /// A Runtime API in the Init phase. `function_arn` is sent as
    /// `Lambda-Runtime-Invoked-Function-Arn` for invocations that do not carry their own.
    pub fn new(function_arn: impl Into<String>) -> Self {
        RuntimeApi {
            function_arn: function_arn.into(),
            phase: Phase::Init,
            current: None,
            last_request_id: None,
            connections: BTreeMap::new(),
            next_connection: 0,
            parked: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A Runtime API for an environment of `config`: its default invoked-function ARN is
    /// [`function_arn`](super::function_arn)`(config)`.
    pub fn for_function(config: &crate::config::FunctionConfig) -> Self {
        Self::new(super::function_arn(config))
    }

    /// Where the runtime is in its lifecycle.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The request id of the invocation in flight, if any.
    pub fn in_flight(&self) -> Option<&str> {
        match (self.phase, &self.current) {
            (Phase::Invoking, Some(pending)) => Some(&pending.invocation.request_id),
            _ => None,
        }
    }

    /// Registers a new connection from the runtime (the guest's `connect` or the server's
    /// `accept`); refused past [`MAX_CONNECTIONS`] open at once.
    pub fn connect(&mut self) -> Result<ConnectionId, TooManyConnections> {
        if self.connections.len() >= MAX_CONNECTIONS {
            return Err(TooManyConnections);
        }
        let id = ConnectionId(self.next_connection);
        self.next_connection = self.next_connection.wrapping_add(1);
        self.connections.insert(id, Connection::default());
        Ok(id)
    }

    /// Bytes held for all connections together (see [`MAX_BUFFERED_BYTES`]).
    pub fn buffered_bytes(&self) -> usize {
        self.connections
            .values()
            .map(Connection::buffered_bytes)
            .fold(0, usize::saturating_add)
    }

    /// Forgets a connection (the client closed it, or the host did after
    /// [`is_closing`](Self::is_closing)). An invocation handed out on it stays in flight: the
    /// runtime can fetch it again with `next` on another connection.
    pub fn disconnect(&mut self, id: ConnectionId) {
        self.connections.remove(&id);
        self.parked.retain(|parked| *parked != id);
    }

    /// Whether `id` is a connection this API knows (connected and not disconnected).
    pub fn is_connected(&self, id: ConnectionId) -> bool {
        self.connections.contains_key(&id)
    }

    /// How many connections this API knows (connected and not disconnected).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Bytes the runtime wrote to connection `id`. Returns how many were accepted: all of
    /// them, unless the connection cannot process requests now (a parked `next`, unread
    /// responses) and already holds [`INBOX_BYTES`] of unprocessed input; offer the rest
    /// again after the client reads or an invocation is delivered, as a full socket buffer
    /// would make a writer wait. Bytes for an unknown or closing connection are accepted and
    /// ignored.
    pub fn receive(&mut self, id: ConnectionId, bytes: &[u8]) -> usize {
        self.pump(id);
        let Some(connection) = self.connections.get(&id) else {
            return bytes.len();
        };
        if connection.closing {
            return bytes.len();
        }
        // What all connections hold bounds what this one may take now.
        let room = MAX_BUFFERED_BYTES.saturating_sub(self.buffered_bytes());
        let bytes = bytes.get(..room).unwrap_or(bytes);
        let mut used = 0;
        if connection.inbox.is_empty() {
            used = self.process(id, bytes);
        }
        let Some(connection) = self.connections.get_mut(&id) else {
            return bytes.len();
        };
        if connection.closing {
            return bytes.len();
        }
        let rest = bytes.get(used..).unwrap_or_default();
        let stash = rest
            .len()
            .min(INBOX_BYTES.saturating_sub(connection.inbox.len()));
        connection
            .inbox
            .extend_from_slice(rest.get(..stash).unwrap_or_default());
        used.saturating_add(stash)
    }

    /// The response bytes waiting to be read on connection `id` (empty for an unknown one).
    pub fn pending_output(&self, id: ConnectionId) -> &[u8] {
        self.connections
            .get(&id)
            .map_or(&[][..], |connection| connection.pending())
    }

    /// Marks the first `n` bytes of [`pending_output`](Self::pending_output) as read by the
    /// client. Reading may let the connection process requests it was holding back.
    pub fn consume_output(&mut self, id: ConnectionId, n: usize) {
        if let Some(connection) = self.connections.get_mut(&id) {
            connection.consume(n);
        }
        self.pump(id);
    }

    /// Takes all response bytes waiting on connection `id`, for a writer that sends them
    /// whole.
    pub fn take_output(&mut self, id: ConnectionId) -> Vec<u8> {
        let output = self
            .connections
            .get_mut(&id)
            .map(Connection::take)
            .unwrap_or_default();
        self.pump(id);
        output
    }

    /// Whether connection `id` has a `next` waiting for an invocation: the client waits for
    /// its answer, which only [`deliver`](Self::deliver) produces.
    pub fn is_parked(&self, id: ConnectionId) -> bool {
        self.connections
            .get(&id)
            .is_some_and(|connection| connection.parked.is_some())
    }

    /// Whether the runtime has a `next` waiting for an invocation, on any connection: it has
    /// asked for its next event.
    pub fn next_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Whether the server is done with connection `id`: once its pending output has been
    /// read the connection should be closed (the client sees end of file) and
    /// [`disconnect`](Self::disconnect)ed. True for unknown connections.
    pub fn is_closing(&self, id: ConnectionId) -> bool {
        self.connections
            .get(&id)
            .is_none_or(|connection| connection.closing)
    }

    /// Hands an invocation to the runtime, with its deadline in milliseconds since the Unix
    /// epoch (`Lambda-Runtime-Deadline-Ms`). A parked `next` is answered at once; otherwise
    /// the invocation waits for the runtime's next `next`. During Init it waits for the end of
    /// Init. [`ApiEvent::InvocationStarted`] tells when the runtime has it.
    pub fn deliver(
        &mut self,
        invocation: Invocation,
        deadline_ms: u64,
    ) -> Result<(), DeliverError> {
        if self.phase == Phase::InitFailed {
            return Err(DeliverError::InitFailed);
        }
        if let Some(pending) = &self.current {
            return Err(DeliverError::Busy(pending.invocation.request_id.clone()));
        }
        self.current = Some(Pending {
            invocation,
            deadline_ms,
            streamed: 0,
        });
        if self.phase == Phase::Idle {
            while let Some(id) = self.parked.pop_front() {
                let Some(keep_alive) = self
                    .connections
                    .get_mut(&id)
                    .and_then(|connection| connection.parked.take())
                else {
                    continue;
                };
                self.start_invocation(id, keep_alive);
                self.pump(id);
                break;
            }
        }
        Ok(())
    }

    /// The oldest event not yet taken.
    pub fn next_event(&mut self) -> Option<ApiEvent> {
        self.events.pop_front()
    }

    /// Checks an API read back from a snapshot (a snapshot file is input the host did not
    /// make): it is one a snapshot can hold, taken where the runtime waits for its next
    /// invocation, so past Init with no invocation queued or in flight and no event the host
    /// has not taken (a forged one would answer the next invocation), with at most
    /// [`MAX_CONNECTIONS`] connections, each named below the next id to hand out, each
    /// connection's output read no further than it holds and its unprocessed input within
    /// [`INBOX_BYTES`](super::INBOX_BYTES), and a queue of parked `next`s that lists each
    /// connection with one parked, once. Says what does not hold.
    pub fn check(&self) -> Result<(), String> {
        if self.phase != Phase::Idle {
            return Err(format!(
                "it is in its {:?} phase, not waiting for an invocation",
                self.phase
            ));
        }
        if let Some(pending) = &self.current {
            return Err(format!(
                "it holds invocation {} already",
                pending.invocation.request_id
            ));
        }
        if !self.events.is_empty() {
            return Err(format!(
                "it holds {} events the host has not taken",
                self.events.len()
            ));
        }
        if self.connections.len() > MAX_CONNECTIONS {
            return Err(format!(
                "it holds {} connections, more than {MAX_CONNECTIONS}",
                self.connections.len()
            ));
        }
        for (id, connection) in &self.connections {
            if id.0 >= self.next_connection {
                return Err(format!("{id} is not handed out yet"));
            }
            connection.check().map_err(|why| format!("{id} {why}"))?;
        }
        // The queue of parked `next`s lists each connection with one parked, once.
        let mut queued = std::collections::BTreeSet::new();
        for id in &self.parked {
            let parked = self
                .connections
                .get(id)
                .is_some_and(|connection| connection.parked.is_some());
            if !parked || !queued.insert(*id) {
                return Err(format!(
                    "its queue of parked nexts lists {id}, which has none parked, or lists it twice"
                ));
            }
        }
        let parked = self
            .connections
            .values()
            .filter(|connection| connection.parked.is_some())
            .count();
        if parked != queued.len() {
            return Err(format!(
                "{parked} connections have a next parked where its queue lists {}",
                queued.len()
            ));
        }
        Ok(())
    }

    /// Processes bytes for connection `id` until they run out or the connection must stop
    /// (parked, closing, too much unread output). Returns how many were used.
    fn process(&mut self, id: ConnectionId, bytes: &[u8]) -> usize {
        let mut pos: usize = 0;
        while let Some(rest) = bytes.get(pos..).filter(|rest| !rest.is_empty()) {
            let Some(connection) = self.connections.get_mut(&id) else {
                return bytes.len();
            };
            if connection.is_blocked() {
                break;
            }
            // Responses to the invocation in flight are streamed when it has a stream.
            let stream_for = match (self.phase, &self.current) {
                (Phase::Invoking, Some(pending))
                    if pending.invocation.response_stream.is_some() =>
                {
                    Some(pending.invocation.request_id.as_str())
                }
                _ => None,
            };
            let (used, event) = connection.reader.feed_streaming(rest, stream_for);
            pos = pos.saturating_add(used);
            match event {
                None => {}
                Some(ReadEvent::ExpectContinue) => connection.push_output(CONTINUE),
                Some(ReadEvent::StreamStart {
                    request,
                    expect_continue,
                }) => {
                    if expect_continue {
                        connection.push_output(CONTINUE);
                    }
                    let request_id = match Route::find(&request.method, request.path()) {
                        Route::Response(request_id) => request_id,
                        _ => String::new(),
                    };
                    connection.stream = Some(Streaming {
                        request_id,
                        keep_alive: request.keep_alive,
                        reader_gone: false,
                    });
                }
                Some(ReadEvent::StreamData(data)) => self.stream_data(id, &data),
                Some(ReadEvent::StreamEnd { data, trailers }) => {
                    self.stream_data(id, &data);
                    self.stream_end(id, Some(&trailers));
                }
                Some(ReadEvent::StreamTooLarge) => self.stream_end(id, None),
                Some(ReadEvent::Error(error)) => {
                    let response =
                        Response::error(error.status(), "InvalidRequest", &error.to_string());
                    self.respond(id, &response, false);
                }
                Some(ReadEvent::Request(request)) => self.dispatch(id, request),
            }
        }
        pos
    }

    /// Processes held-back input of connection `id` once it may.
    fn pump(&mut self, id: ConnectionId) {
        loop {
            let Some(connection) = self.connections.get_mut(&id) else {
                return;
            };
            if connection.is_blocked() || connection.inbox.is_empty() {
                return;
            }
            let inbox = std::mem::take(&mut connection.inbox);
            let used = self.process(id, &inbox);
            if let Some(connection) = self.connections.get_mut(&id) {
                if !connection.closing {
                    connection.inbox = inbox.get(used..).unwrap_or_default().to_vec();
                }
            }
            if used == 0 {
                return;
            }
        }
    }

    fn respond(&mut self, id: ConnectionId, response: &Response, keep_alive: bool) {
        self.respond_with_body(id, response, &response.body, keep_alive);
    }

    /// Answers with `response`'s head and `body`.
    fn respond_with_body(
        &mut self,
        id: ConnectionId,
        response: &Response,
        body: &[u8],
        keep_alive: bool,
    ) {
        if let Some(connection) = self.connections.get_mut(&id) {
            response.write_with_body(connection.output_mut(), body, !keep_alive);
            if !keep_alive {
                connection.closing = true;
                connection.inbox = Vec::new();
            }
        }
    }

    fn dispatch(&mut self, id: ConnectionId, request: Request) {
        let keep_alive = request.keep_alive;
        let response = match Route::find(&request.method, request.path()) {
            Route::Next => {
                self.next(id, keep_alive);
                return;
            }
            Route::Response(request_id) => self.result(&request_id, request, ResultKind::Response),
            Route::Error(request_id) => self.result(&request_id, request, ResultKind::Error),
            Route::InitError => self.init_error(request),
            Route::MethodNotAllowed(allowed) => {
                Response::error(405, "MethodNotAllowed", "Method not allowed")
                    .with_header("Allow", allowed)
            }
            Route::NotFound => Response::error(404, "NotFound", "Not found"),
        };
        self.respond(id, &response, keep_alive);
    }

    fn next(&mut self, id: ConnectionId, keep_alive: bool) {
        match self.phase {
            Phase::InitFailed => {
                let response = invalid_transition(self.phase, "Ready");
                self.respond(id, &response, keep_alive);
            }
            Phase::Invoking => {
                // Redelivery of the invocation in flight (see the type's documentation), unless
                // the connections already hold too much to take another copy of the event.
                let payload = self
                    .current
                    .as_ref()
                    .map_or(0, |pending| pending.invocation.payload.len());
                if self.buffered_bytes().saturating_add(payload) > MAX_BUFFERED_BYTES {
                    let response = Response::error(
                        429,
                        "TooManyRequests",
                        "the Runtime API holds too many unread responses: read them first",
                    );
                    self.respond(id, &response, false);
                    return;
                }
                if let Some(pending) = self.current.take() {
                    let response = event_head(&pending, &self.function_arn);
                    self.respond_with_body(id, &response, &pending.invocation.payload, keep_alive);
                    self.current = Some(pending);
                }
            }
            Phase::Init | Phase::Idle => {
                if self.phase == Phase::Init {
                    self.phase = Phase::Idle;
                    self.events.push_back(ApiEvent::InitDone);
                }
                if self.current.is_some() {
                    self.start_invocation(id, keep_alive);
                } else if let Some(connection) = self.connections.get_mut(&id) {
                    connection.parked = Some(keep_alive);
                    self.parked.push_back(id);
                }
            }
        }
    }

    /// Answers connection `id`'s `next` with the current invocation.
    fn start_invocation(&mut self, id: ConnectionId, keep_alive: bool) {
        let Some(pending) = self.current.take() else {
            return;
        };
        let response = event_head(&pending, &self.function_arn);
        let request_id = pending.invocation.request_id.clone();
        self.phase = Phase::Invoking;
        self.respond_with_body(id, &response, &pending.invocation.payload, keep_alive);
        self.current = Some(pending);
        self.events
            .push_back(ApiEvent::InvocationStarted { request_id });
    }

    /// Writes a piece of a streamed body to the stream of the invocation it answers, if that
    /// is still in flight and the stream's reader is still there.
    fn stream_data(&mut self, id: ConnectionId, data: &[u8]) {
        let Some(streaming) = self
            .connections
            .get_mut(&id)
            .and_then(|connection| connection.stream.as_mut())
        else {
            return;
        };
        if data.is_empty() || streaming.reader_gone || self.phase != Phase::Invoking {
            return;
        }
        let Some(pending) = self
            .current
            .as_mut()
            .filter(|pending| pending.invocation.request_id == streaming.request_id)
        else {
            return;
        };
        let Some(stream) = pending.invocation.response_stream.as_ref() else {
            return;
        };
        let total = pending.streamed.saturating_add(data.len());
        if total > MAX_STREAMED_RESPONSE_BYTES {
            // Other connections already streamed most of the limit for this invocation:
            // this one's pieces are dropped (its own limit still ends it with a 413).
            streaming.reader_gone = true;
            return;
        }
        pending.streamed = total;
        if !stream.write(data) {
            streaming.reader_gone = true;
        }
    }

    /// Completes the streamed response of connection `id`: it ended with `trailers`, or (for
    /// `None`) grew past [`MAX_STREAMED_RESPONSE_BYTES`].
    fn stream_end(&mut self, id: ConnectionId, trailers: Option<&[(String, String)]>) {
        let Some(streaming) = self
            .connections
            .get_mut(&id)
            .and_then(|connection| connection.stream.take())
        else {
            return;
        };
        let request_id = streaming.request_id.as_str();
        let refusal = self.refuse_result(request_id, ResultKind::Response);
        let response = match trailers {
            Some(trailers) => refusal.unwrap_or_else(|| {
                let outcome = match error_from_trailers(trailers) {
                    Some(error) => InvokeOutcome::Error(error),
                    None => InvokeOutcome::Response(Vec::new()),
                };
                self.complete(request_id, outcome);
                Response::accepted()
            }),
            None => {
                if refusal.is_none() {
                    let error = too_large_error(None, MAX_STREAMED_RESPONSE_BYTES);
                    self.complete(request_id, InvokeOutcome::Error(error));
                }
                payload_too_large(MAX_STREAMED_RESPONSE_BYTES)
            }
        };
        self.respond(id, &response, streaming.keep_alive);
    }

    /// The answer refusing a result for `request_id`, unless it is the invocation in flight.
    fn refuse_result(&self, request_id: &str, kind: ResultKind) -> Option<Response> {
        if self.phase == Phase::InitFailed {
            return Some(invalid_transition(self.phase, kind.state_name()));
        }
        if self.in_flight() != Some(request_id) || request_id.is_empty() {
            if self.last_request_id.as_deref() == Some(request_id) {
                return Some(invalid_transition(self.phase, kind.state_name()));
            }
            return Some(Response::error(
                400,
                "InvalidRequestID",
                "Invalid request ID",
            ));
        }
        None
    }

    fn result(&mut self, request_id: &str, request: Request, kind: ResultKind) -> Response {
        if let Some(refusal) = self.refuse_result(request_id, kind) {
            return refusal;
        }
        let header_type = request.header(ERROR_TYPE_HEADER).map(str::to_string);
        let stream = self
            .current
            .as_ref()
            .and_then(|pending| pending.invocation.response_stream.clone());
        let streaming_mode = request.is_streaming_response();
        // A streaming-mode response the reader did not stream because of its declared length.
        let limit = if streaming_mode && stream.is_some() {
            MAX_STREAMED_RESPONSE_BYTES
        } else {
            MAX_BODY_BYTES
        };
        let (response, outcome) = match request.body {
            Body::TooLarge { declared } => (
                payload_too_large(limit),
                InvokeOutcome::Error(too_large_error(declared, limit)),
            ),
            Body::Complete(body) => {
                let outcome = match kind {
                    ResultKind::Response => {
                        let trailer_error = streaming_mode
                            .then(|| error_from_trailers(&request.trailers))
                            .flatten();
                        match (trailer_error, stream) {
                            (Some(error), _) => InvokeOutcome::Error(error),
                            (None, Some(stream)) => {
                                // A caller that streams reads the body from the stream only,
                                // which takes at most the streaming limit in all.
                                let streamed = self.current.as_ref().map_or(0, |p| p.streamed);
                                if streamed.saturating_add(body.len()) > MAX_STREAMED_RESPONSE_BYTES
                                {
                                    InvokeOutcome::Error(too_large_error(
                                        None,
                                        MAX_STREAMED_RESPONSE_BYTES,
                                    ))
                                } else {
                                    if !body.is_empty() {
                                        stream.write(&body);
                                    }
                                    InvokeOutcome::Response(Vec::new())
                                }
                            }
                            (None, None) => InvokeOutcome::Response(body),
                        }
                    }
                    ResultKind::Error => InvokeOutcome::Error(error_from_report(
                        header_type.as_deref(),
                        &body,
                        "Unhandled",
                    )),
                };
                (Response::accepted(), outcome)
            }
        };
        self.complete(request_id, outcome);
        response
    }

    /// Ends the invocation in flight, `request_id`, with `outcome`.
    fn complete(&mut self, request_id: &str, outcome: InvokeOutcome) {
        self.current = None;
        self.phase = Phase::Idle;
        self.last_request_id = Some(request_id.to_string());
        self.events.push_back(ApiEvent::InvocationDone {
            request_id: request_id.to_string(),
            outcome,
        });
    }

    fn init_error(&mut self, request: Request) -> Response {
        if self.phase != Phase::Init {
            return invalid_transition(self.phase, "InitError");
        }
        let header_type = request.header(ERROR_TYPE_HEADER).map(str::to_string);
        let (response, error) = match request.body {
            Body::Complete(body) => (
                Response::accepted(),
                error_from_report(header_type.as_deref(), &body, "Runtime.InitError"),
            ),
            Body::TooLarge { .. } => (
                payload_too_large(MAX_BODY_BYTES),
                FunctionError::new(
                    ErrorType::Function(header_type.unwrap_or_else(|| "Runtime.InitError".into())),
                    format!("the init error report was larger than {MAX_BODY_BYTES} bytes"),
                ),
            ),
        };
        self.phase = Phase::InitFailed;
        self.current = None;
        self.events.push_back(ApiEvent::InitError(error));
        response
    }
}

#[derive(Clone, Copy)]
enum ResultKind {
    Response,
    Error,
}

impl ResultKind {
    fn state_name(self) -> &'static str {
        match self {
            ResultKind::Response => "InvocationResponse",
            ResultKind::Error => "InvocationErrorResponse",
        }
    }
}

/// RIE's 403 for a request the lifecycle does not allow now.
fn invalid_transition(phase: Phase, to: &str) -> Response {
    let from = match phase {
        Phase::Init => "Init",
        Phase::Idle => "Idle",
        Phase::Invoking => "Invoking",
        Phase::InitFailed => "InitError",
    };
    Response::error(
        403,
        "InvalidStateTransition",
        &format!(
            "State transition from {from} to {to} failed for runtime. Error: State transition is not allowed"
        ),
    )
}

/// RIE's 413 for a body over `limit` bytes.
fn payload_too_large(limit: usize) -> Response {
    Response::error(
        413,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({limit} bytes)."),
    )
}

/// Lambda's error for a response over `limit` bytes.
fn too_large_error(declared: Option<u64>, limit: usize) -> FunctionError {
    let size = declared.map_or(String::new(), |size| format!(" ({size} bytes)"));
    FunctionError::new(
        ErrorType::FunctionResponseSizeTooLarge,
        format!(
            "Response payload size{size} exceeded maximum allowed payload size ({limit} bytes)."
        ),
    )
}

/// The head of the `200` answering a `next` with an invocation (its body is the payload).
fn event_head(pending: &Pending, default_arn: &str) -> Response {
    let invocation = &pending.invocation;
    let mut response = Response::json(200, Vec::new())
        .with_header(headers::REQUEST_ID, &invocation.request_id)
        .with_header(headers::DEADLINE_MS, pending.deadline_ms.to_string())
        .with_header(
            headers::INVOKED_FUNCTION_ARN,
            invocation
                .invoked_function_arn
                .as_deref()
                .unwrap_or(default_arn),
        );
    let optional = [
        (headers::TRACE_ID, &invocation.trace_id),
        (headers::CLIENT_CONTEXT, &invocation.client_context),
        (headers::COGNITO_IDENTITY, &invocation.cognito_identity),
    ];
    for (name, value) in optional {
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
            response = response.with_header(name, value);
        }
    }
    response
}
