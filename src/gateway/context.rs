//! What every handler shares: the service, the gateway's own state, and reading a JSON body.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lambda_sched::Service;
use serde::de::DeserializeOwned;

use super::api_error::ApiError;
use super::catalog::Catalog;
use super::code_store::CodeStore;
use super::message::Request;
use super::route::Operation;
use super::signature::Credentials;

/// The service and the gateway's own state.
#[derive(Debug)]
pub(super) struct Context {
    /// The service requests go to.
    pub service: Arc<Service>,
    /// Uploaded code.
    pub store: CodeStore,
    /// What the gateway shows of each function beyond the service's view.
    pub catalog: Catalog,
    /// The base image for `provided.al2023` and `provided.al2` functions.
    pub base_image: Option<PathBuf>,
    /// The most bytes of code the gateway keeps.
    pub max_code_bytes: u64,
    /// The credentials requests must be signed with, if any.
    pub credentials: Option<Credentials>,
    /// Whether Function URLs are served unsigned even with credentials set.
    pub open_function_urls: bool,
    /// Held by every operation that changes functions, so that no two interleave (an
    /// update racing a delete, two uploads racing the code-storage limit).
    pub changes: Mutex<()>,
    /// Room for request bodies held at once (from the first byte read until the request is
    /// answered), in units of `server::BODY_UNIT` bytes.
    pub bodies: Arc<tokio::sync::Semaphore>,
}

impl Context {
    /// The credentials `operation` must be signed with, if any.
    pub fn signer_for(&self, operation: &Operation) -> Option<&Credentials> {
        let open = self.open_function_urls && matches!(operation, Operation::FunctionUrl(..));
        self.credentials.as_ref().filter(|_| !open)
    }
}

/// The request's JSON body as `T`; an empty body is `{}`.
pub(super) fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let body: &[u8] = if request.body.is_empty() {
        b"{}"
    } else {
        &request.body
    };
    serde_json::from_slice(body).map_err(|error| {
        ApiError::invalid_content(format!("Could not parse request body into json: {error}"))
    })
}
