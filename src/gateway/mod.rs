//! Lambda's HTTP API over HTTP/1.1, so the AWS CLI, boto3 and the other AWS SDKs can drive
//! a [`Service`](crate::sched::Service) (the `gateway` feature, on by default).
//!
//! ```no_run
//! use std::sync::Arc;
//! use lambda::gateway::{Gateway, GatewayConfig};
//! use lambda::sched::Service;
//! use lambda::vmm::MicroVmBackend;
//!
//! let service = Service::builder(Arc::new(MicroVmBackend::new()?)).build()?;
//! let gateway = Gateway::start(Arc::new(service), GatewayConfig::new("127.0.0.1:9000".parse()?))?;
//! println!("aws --endpoint-url http://{} lambda list-functions", gateway.local_addr());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Reading order
//!
//! A request goes through the files in this order:
//! 1. `server`: the listener, one hyper HTTP/1.1 connection per client (keep-alive, header
//!    and body timeouts, a cap on connections and on body sizes, writes that may stall only
//!    so long: `stall`), the signature's headers checked before the body is read, each
//!    request handed to a blocking thread;
//! 2. `route`: method and path to an `Operation` with its path parameters, as
//!    Lambda's REST API spells them;
//! 3. `dispatch`: the operation meets its handler on a blocking thread (operations that
//!    change functions one at a time);
//! 4. the operations: `invoke` (Invoke), `invoke_stream` (InvokeWithResponseStream: the
//!    response framed by `event_stream` as the function writes it), `functions` (the
//!    control plane), `function_url`
//!    (Function URLs: an HTTP request becomes a payload-format-2.0 event and the function's
//!    answer the HTTP response);
//! 5. what they use: `context` (what handlers share), `shapes` (Lambda's JSON bodies),
//!    `code_store` (uploaded zips on disk), `api_error` (Lambda's error responses),
//!    `catalog` (what Lambda shows of a function beyond the service's view), `message` (the
//!    request and response a handler sees), `time_format` (Lambda's timestamps),
//!    `function_destination` (a function as an async destination), `page` (lists in
//!    pages); `config`
//!    and `error` hold [`GatewayConfig`] and [`GatewayError`].
//!
//! Requests are checked before they run: with [`GatewayConfig::credentials`] set, each must
//! carry an AWS Signature Version 4 made with them (`signature`), Function URLs too unless
//! [`GatewayConfig::open_function_urls`]; without, any credentials are accepted, as local
//! emulators accept them.
//!
//! Not served yet: destinations other than functions, and code from S3 or container images
//! (`Code.ZipFile` only). See `docs/gateway.md`.

mod api_error;
mod catalog;
mod code_store;
mod config;
mod context;
mod dispatch;
mod error;
mod event_stream;
mod function_destination;
mod function_url;
mod functions;
mod invoke;
mod invoke_stream;
mod message;
mod page;
mod route;
mod server;
mod shapes;
mod signature;
mod stall;
mod time_format;

pub use config::GatewayConfig;
pub use error::GatewayError;
pub use server::Gateway;
pub use signature::Credentials;
