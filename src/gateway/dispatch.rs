//! The one place an operation meets its handler.

use super::api_error::ApiError;
use super::context::Context;
use super::message::{Request, Response};
use super::route::Operation;
use super::{function_url, functions, invoke};

/// Runs `operation` for `request`.
pub(super) fn dispatch(
    context: &Context,
    operation: Operation,
    request: &Request,
) -> Result<Response, ApiError> {
    use Operation as O;
    // Changes run one at a time. A handler that panicked fails its own request only: the
    // lock is taken despite the poison, or one panic would stop every later change.
    let _changing = operation
        .changes_functions()
        .then(|| context.changes.lock().unwrap_or_else(|p| p.into_inner()));
    let c = context;
    let r = request;
    match operation {
        O::Invoke(f) => invoke::invoke(c, r, &f),
        // Its answer is a stream the server writes as it comes (`invoke_stream`), never a
        // whole response.
        O::InvokeWithResponseStream(_) => Err(ApiError::service(
            "InvokeWithResponseStream is answered as a stream, not dispatched",
        )),
        O::FunctionUrl(f, path) => function_url::call(c, r, &f, &path),
        O::CreateFunction => functions::create_function(c, r),
        O::ListFunctions => functions::list_functions(c, r),
        O::GetFunction(f) => functions::get_function(c, r, &f),
        O::DeleteFunction(f) => functions::delete_function(c, r, &f),
        O::GetFunctionConfiguration(f) => functions::get_function_configuration(c, r, &f),
        O::UpdateFunctionConfiguration(f) => functions::update_function_configuration(c, r, &f),
        O::UpdateFunctionCode(f) => functions::update_function_code(c, r, &f),
        O::PublishVersion(f) => functions::publish_version(c, r, &f),
        O::ListVersionsByFunction(f) => functions::list_versions(c, r, &f),
        O::CreateAlias(f) => functions::create_alias(c, r, &f),
        O::ListAliases(f) => functions::list_aliases(c, r, &f),
        O::GetAlias(f, a) => functions::get_alias(c, &f, &a),
        O::UpdateAlias(f, a) => functions::update_alias(c, r, &f, &a),
        O::DeleteAlias(f, a) => functions::delete_alias(c, &f, &a),
        O::PutFunctionConcurrency(f) => functions::put_concurrency(c, r, &f),
        O::DeleteFunctionConcurrency(f) => functions::delete_concurrency(c, &f),
        O::GetFunctionConcurrency(f) => functions::get_concurrency(c, &f),
        O::PutProvisionedConcurrencyConfig(f) => functions::put_provisioned(c, r, &f),
        O::DeleteProvisionedConcurrencyConfig(f) => functions::delete_provisioned(c, r, &f),
        O::PutFunctionEventInvokeConfig(f) => functions::put_event_invoke_config(c, r, &f),
        O::GetAccountSettings => functions::account_settings(c),
    }
}
