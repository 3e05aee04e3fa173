//! A real HTTP server on 127.0.0.1 serving an environment's [`RuntimeApi`]: one thread
//! accepting, one thread per connection. The protocol itself is the sans-IO machine in the
//! hub; these threads only move bytes between it and the sockets.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use lambda_core::runtime_api::{ConnectionId, RuntimeApi};

use super::hub::Hub;

/// Bytes read from a socket at a time.
const READ_BUFFER: usize = 64 * 1024;

/// The listening side of one environment's Runtime API.
pub(super) struct ApiServer {
    addr: SocketAddr,
    hub: Arc<Hub>,
    accept: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Listens on an ephemeral port of 127.0.0.1 and starts accepting.
    pub(super) fn start(hub: Arc<Hub>) -> io::Result<ApiServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let accept_hub = Arc::clone(&hub);
        let accept = std::thread::Builder::new()
            .name("rapi-accept".into())
            .spawn(move || accept_loop(listener, accept_hub))?;
        Ok(ApiServer {
            addr,
            hub,
            accept: Some(accept),
        })
    }

    /// Where the runtime connects: `AWS_LAMBDA_RUNTIME_API`.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the Runtime API (for a new process of the environment), closing every
    /// connection of the old one.
    pub(super) fn reset(&self, api: RuntimeApi) {
        let mut state = self.hub.lock();
        state.generation += 1;
        state.api = api;
        state.close_streams();
        drop(state);
        self.hub.notify();
    }

    /// Stops accepting, closes every connection and joins all threads.
    pub(super) fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        let mut state = self.hub.lock();
        state.shutdown = true;
        state.close_streams();
        drop(state);
        self.hub.notify();
        // Wake the accept thread out of accept(2); it sees `shutdown` and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = accept.join();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, hub: Arc<Hub>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if hub.lock().shutdown {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                // Out of descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let (finished, running): (Vec<_>, Vec<_>) =
            workers.into_iter().partition(JoinHandle::is_finished);
        workers = running;
        for worker in finished {
            let _ = worker.join();
        }
        let _ = stream.set_nodelay(true);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let (id, generation) = {
            let mut state = hub.lock();
            if state.shutdown {
                break;
            }
            let Ok(id) = state.api.connect() else {
                // Past the Runtime API's connection limit: refused, as by a full backlog.
                let _ = stream.shutdown(std::net::Shutdown::Both);
                continue;
            };
            state.streams.insert(id, clone);
            (id, state.generation)
        };
        let worker_hub = Arc::clone(&hub);
        let spawned = std::thread::Builder::new()
            .name("rapi-conn".into())
            .spawn(move || serve(stream, id, generation, worker_hub));
        match spawned {
            Ok(worker) => workers.push(worker),
            Err(_) => {
                let mut state = hub.lock();
                if state.generation == generation {
                    state.api.disconnect(id);
                    if let Some(stream) = state.streams.remove(&id) {
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
}

/// Serves one connection until either side closes it or the environment moves on.
fn serve(mut stream: TcpStream, id: ConnectionId, generation: u64, hub: Arc<Hub>) {
    let mut buffer = vec![0; READ_BUFFER];
    // Bytes read from the socket that the API has not accepted yet.
    let mut unaccepted: Vec<u8> = Vec::new();
    loop {
        let (output, closing) = {
            let mut state = hub.lock();
            loop {
                if state.shutdown || state.generation != generation {
                    return;
                }
                if !unaccepted.is_empty() {
                    let used = state.api.receive(id, &unaccepted);
                    unaccepted.drain(..used);
                    hub.notify();
                }
                let has_output = !state.api.pending_output(id).is_empty();
                if has_output || state.api.is_closing(id) || !state.api.is_parked(id) {
                    break;
                }
                // A `next` waits for an invocation: nothing to write and nothing to read.
                state = hub.wait(state);
            }
            (state.api.take_output(id), state.api.is_closing(id))
        };
        if !output.is_empty() {
            if stream.write_all(&output).is_err() {
                break;
            }
            continue;
        }
        if closing {
            break;
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => unaccepted.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let mut state = hub.lock();
    if state.generation == generation {
        state.api.disconnect(id);
        state.streams.remove(&id);
    }
    drop(state);
    hub.notify();
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;
    use std::time::Instant;

    use lambda_core::Invocation;
    use lambda_core::logs::LogCollector;
    use lambda_core::runtime_api::ApiEvent;

    use super::*;

    const NEXT: &[u8] = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";

    fn server() -> (Arc<Hub>, ApiServer) {
        let hub = Arc::new(Hub::new(RuntimeApi::new("arn"), LogCollector::new(0)));
        let server = ApiServer::start(Arc::clone(&hub)).unwrap();
        (hub, server)
    }

    fn connect(server: &ApiServer) -> TcpStream {
        let stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Reads one response: its status line and body.
    fn read_response(reader: &mut io::BufReader<&TcpStream>) -> (String, Vec<u8>) {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status.trim_end().to_string(), body)
    }

    fn wait_for(hub: &Hub, what: impl Fn(&mut crate::process::hub::HubState) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut state = hub.lock();
        while !what(&mut state) {
            assert!(Instant::now() < deadline, "timed out");
            state = hub.wait_until(state, deadline);
        }
    }

    #[test]
    fn parked_next_is_answered_on_delivery_and_others_are_served_meanwhile() {
        let (hub, mut server) = server();
        let parked = connect(&server);
        (&parked).write_all(NEXT).unwrap();
        wait_for(&hub, |state| {
            state.api.next_event() == Some(ApiEvent::InitDone)
        });

        // Another connection is served while the first waits.
        let other = connect(&server);
        (&other).write_all(b"GET /nope HTTP/1.1\r\n\r\n").unwrap();
        let mut other_reader = io::BufReader::new(&other);
        assert_eq!(read_response(&mut other_reader).0, "HTTP/1.1 404 Not Found");

        let invocation = Invocation::new(b"{\"over\":\"tcp\"}".to_vec());
        let id = invocation.request_id.clone();
        hub.lock().api.deliver(invocation, 42).unwrap();
        hub.notify();
        let mut reader = io::BufReader::new(&parked);
        let (status, body) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"{\"over\":\"tcp\"}");

        let post = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\n\
             Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        );
        (&parked).write_all(post.as_bytes()).unwrap();
        assert_eq!(read_response(&mut reader).0, "HTTP/1.1 202 Accepted");
        wait_for(&hub, |state| {
            std::iter::from_fn(|| state.api.next_event())
                .any(|event| matches!(event, ApiEvent::InvocationDone { .. }))
        });
        server.stop();
    }

    #[test]
    fn malformed_request_is_answered_400_and_closed() {
        let (_hub, mut server) = server();
        let stream = connect(&server);
        (&stream)
            .write_all(b"\x16\x03\x01 not http\r\n\r\n")
            .unwrap();
        let mut reader = io::BufReader::new(&stream);
        assert_eq!(read_response(&mut reader).0, "HTTP/1.1 400 Bad Request");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the server closed the connection");
        server.stop();
    }

    #[test]
    fn reset_and_stop_close_connections() {
        let (hub, mut server) = server();
        let stream = connect(&server);
        (&stream).write_all(NEXT).unwrap();
        wait_for(&hub, |state| {
            state.api.next_event() == Some(ApiEvent::InitDone)
        });
        server.reset(RuntimeApi::new("arn"));
        let mut rest = Vec::new();
        let mut reader = io::BufReader::new(&stream);
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        // The new Runtime API is in Init again on a new connection.
        let fresh = connect(&server);
        (&fresh).write_all(NEXT).unwrap();
        wait_for(&hub, |state| {
            state.api.next_event() == Some(ApiEvent::InitDone)
        });
        let started = Instant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut rest = Vec::new();
        io::BufReader::new(&fresh).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}
