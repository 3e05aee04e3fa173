//! Method and path to an operation of Lambda's REST API, with its path parameters.

use super::api_error::ApiError;
use super::message::{Request, decode_segment};

/// An operation and the parameters its path holds (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Operation {
    /// `POST /2015-03-31/functions/{f}/invocations`
    Invoke(String),
    /// `POST /2021-11-15/functions/{f}/response-streaming-invocations`
    InvokeWithResponseStream(String),
    /// `POST /2015-03-31/functions`
    CreateFunction,
    /// `GET /2015-03-31/functions`
    ListFunctions,
    /// `GET /2015-03-31/functions/{f}`
    GetFunction(String),
    /// `DELETE /2015-03-31/functions/{f}`
    DeleteFunction(String),
    /// `GET /2015-03-31/functions/{f}/configuration`
    GetFunctionConfiguration(String),
    /// `PUT /2015-03-31/functions/{f}/configuration`
    UpdateFunctionConfiguration(String),
    /// `PUT /2015-03-31/functions/{f}/code`
    UpdateFunctionCode(String),
    /// `POST /2015-03-31/functions/{f}/versions`
    PublishVersion(String),
    /// `GET /2015-03-31/functions/{f}/versions`
    ListVersionsByFunction(String),
    /// `POST /2015-03-31/functions/{f}/aliases`
    CreateAlias(String),
    /// `GET /2015-03-31/functions/{f}/aliases`
    ListAliases(String),
    /// `GET /2015-03-31/functions/{f}/aliases/{a}`
    GetAlias(String, String),
    /// `PUT /2015-03-31/functions/{f}/aliases/{a}`
    UpdateAlias(String, String),
    /// `DELETE /2015-03-31/functions/{f}/aliases/{a}`
    DeleteAlias(String, String),
    /// `PUT /2017-10-31/functions/{f}/concurrency`
    PutFunctionConcurrency(String),
    /// `DELETE /2017-10-31/functions/{f}/concurrency`
    DeleteFunctionConcurrency(String),
    /// `GET /2019-09-30/functions/{f}/concurrency`
    GetFunctionConcurrency(String),
    /// `PUT /2019-09-30/functions/{f}/provisioned-concurrency`
    PutProvisionedConcurrencyConfig(String),
    /// `DELETE /2019-09-30/functions/{f}/provisioned-concurrency`
    DeleteProvisionedConcurrencyConfig(String),
    /// `PUT /2019-09-25/functions/{f}/event-invoke-config`
    PutFunctionEventInvokeConfig(String),
    /// `GET /2016-08-19/account-settings`
    GetAccountSettings,
    /// Any method on `/url/{f}/...`: a Function URL request; the second field is the path
    /// the function sees (from the `/` after the name; still percent-encoded).
    FunctionUrl(String, String),
}

/// The largest body a control-plane request may have: a 50 MB zip in base64, and its JSON.
pub(super) const MAX_CONTROL_BODY: usize = 70 * 1024 * 1024;

impl Operation {
    /// The largest body the operation reads; a larger one is refused unread.
    pub fn body_limit(&self) -> usize {
        match self {
            Operation::Invoke(_)
            | Operation::InvokeWithResponseStream(_)
            | Operation::FunctionUrl(..) => lambda_core::limits::MAX_SYNC_PAYLOAD_BYTES,
            _ => MAX_CONTROL_BODY,
        }
    }

    /// The operation's name in Lambda's API.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Invoke(_) => "Invoke",
            Operation::InvokeWithResponseStream(_) => "InvokeWithResponseStream",
            Operation::CreateFunction => "CreateFunction",
            Operation::ListFunctions => "ListFunctions",
            Operation::GetFunction(_) => "GetFunction",
            Operation::DeleteFunction(_) => "DeleteFunction",
            Operation::GetFunctionConfiguration(_) => "GetFunctionConfiguration",
            Operation::UpdateFunctionConfiguration(_) => "UpdateFunctionConfiguration",
            Operation::UpdateFunctionCode(_) => "UpdateFunctionCode",
            Operation::PublishVersion(_) => "PublishVersion",
            Operation::ListVersionsByFunction(_) => "ListVersionsByFunction",
            Operation::CreateAlias(_) => "CreateAlias",
            Operation::ListAliases(_) => "ListAliases",
            Operation::GetAlias(..) => "GetAlias",
            Operation::UpdateAlias(..) => "UpdateAlias",
            Operation::DeleteAlias(..) => "DeleteAlias",
            Operation::PutFunctionConcurrency(_) => "PutFunctionConcurrency",
            Operation::DeleteFunctionConcurrency(_) => "DeleteFunctionConcurrency",
            Operation::GetFunctionConcurrency(_) => "GetFunctionConcurrency",
            Operation::PutProvisionedConcurrencyConfig(_) => "PutProvisionedConcurrencyConfig",
            Operation::DeleteProvisionedConcurrencyConfig(_) => {
                "DeleteProvisionedConcurrencyConfig"
            }
            Operation::PutFunctionEventInvokeConfig(_) => "PutFunctionEventInvokeConfig",
            Operation::GetAccountSettings => "GetAccountSettings",
            Operation::FunctionUrl(..) => "FunctionUrl",
        }
    }

    /// Whether the operation changes functions (their code, configuration, versions,
    /// aliases or limits): such operations run one at a time.
    pub fn changes_functions(&self) -> bool {
        use Operation as O;
        !matches!(
            self,
            O::Invoke(_)
                | O::InvokeWithResponseStream(_)
                | O::FunctionUrl(..)
                | O::ListFunctions
                | O::GetFunction(_)
                | O::GetFunctionConfiguration(_)
                | O::ListVersionsByFunction(_)
                | O::ListAliases(_)
                | O::GetAlias(..)
                | O::GetFunctionConcurrency(_)
                | O::GetAccountSettings
        )
    }
}

/// The operation `method` on `path` names.
pub(super) fn route(method: &str, path: &str) -> Result<Operation, ApiError> {
    if let Some(rest) = path.strip_prefix("/url/") {
        let (name, tail) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if name.is_empty() {
            return Err(ApiError::unknown_operation(
                "a Function URL is /url/{function name}/{path}",
            ));
        }
        return Ok(Operation::FunctionUrl(
            decode_segment(name),
            tail.to_string(),
        ));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let d = |s: &str| decode_segment(s);
    use Operation as O;
    // Each arm names the methods a path takes; a known path with another method is refused
    // with those methods named.
    let (allowed, operation): (&str, Option<Operation>) = match segments.as_slice() {
        ["2015-03-31", "functions"] => (
            "GET, POST",
            match method {
                "GET" => Some(O::ListFunctions),
                "POST" => Some(O::CreateFunction),
                _ => None,
            },
        ),
        ["2015-03-31", "functions", f] => (
            "GET, DELETE",
            match method {
                "GET" => Some(O::GetFunction(d(f))),
                "DELETE" => Some(O::DeleteFunction(d(f))),
                _ => None,
            },
        ),
        ["2015-03-31", "functions", f, "invocations"] => {
            ("POST", (method == "POST").then(|| O::Invoke(d(f))))
        }
        ["2015-03-31", "functions", f, "configuration"] => (
            "GET, PUT",
            match method {
                "GET" => Some(O::GetFunctionConfiguration(d(f))),
                "PUT" => Some(O::UpdateFunctionConfiguration(d(f))),
                _ => None,
            },
        ),
        ["2015-03-31", "functions", f, "code"] => (
            "PUT",
            (method == "PUT").then(|| O::UpdateFunctionCode(d(f))),
        ),
        ["2015-03-31", "functions", f, "versions"] => (
            "GET, POST",
            match method {
                "GET" => Some(O::ListVersionsByFunction(d(f))),
                "POST" => Some(O::PublishVersion(d(f))),
                _ => None,
            },
        ),
        ["2015-03-31", "functions", f, "aliases"] => (
            "GET, POST",
            match method {
                "GET" => Some(O::ListAliases(d(f))),
                "POST" => Some(O::CreateAlias(d(f))),
                _ => None,
            },
        ),
        ["2015-03-31", "functions", f, "aliases", a] => (
            "GET, PUT, DELETE",
            match method {
                "GET" => Some(O::GetAlias(d(f), d(a))),
                "PUT" => Some(O::UpdateAlias(d(f), d(a))),
                "DELETE" => Some(O::DeleteAlias(d(f), d(a))),
                _ => None,
            },
        ),
        ["2017-10-31", "functions", f, "concurrency"] => (
            "PUT, DELETE",
            match method {
                "PUT" => Some(O::PutFunctionConcurrency(d(f))),
                "DELETE" => Some(O::DeleteFunctionConcurrency(d(f))),
                _ => None,
            },
        ),
        ["2019-09-30", "functions", f, "concurrency"] => (
            "GET",
            (method == "GET").then(|| O::GetFunctionConcurrency(d(f))),
        ),
        ["2019-09-30", "functions", f, "provisioned-concurrency"] => (
            "PUT, DELETE",
            match method {
                "PUT" => Some(O::PutProvisionedConcurrencyConfig(d(f))),
                "DELETE" => Some(O::DeleteProvisionedConcurrencyConfig(d(f))),
                _ => None,
            },
        ),
        ["2019-09-25", "functions", f, "event-invoke-config"] => (
            "PUT",
            (method == "PUT").then(|| O::PutFunctionEventInvokeConfig(d(f))),
        ),
        ["2016-08-19", "account-settings"] => {
            ("GET", (method == "GET").then_some(O::GetAccountSettings))
        }
        [
            "2021-11-15",
            "functions",
            f,
            "response-streaming-invocations",
        ] => (
            "POST",
            (method == "POST").then(|| O::InvokeWithResponseStream(d(f))),
        ),
        _ => {
            return Err(ApiError::unknown_operation(format!(
                "{method} {path} is not an operation of Lambda's API that this gateway serves"
            )));
        }
    };
    operation.ok_or_else(|| {
        ApiError::unknown_operation(format!(
            "{method} is not an operation on {path}; it takes {allowed}"
        ))
    })
}

/// A function named in a path or body: a name, `name:qualifier`, a partial ARN
/// (`account:function:name[:qualifier]`) or a full ARN. Returns the name and the qualifier.
pub(super) fn split_function(reference: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = reference.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", name] => (*name, None),
        ["arn", _, "lambda", _, _, "function", name, qualifier] => (*name, Some(*qualifier)),
        [_, "function", name] => (*name, None),
        [_, "function", name, qualifier] => (*name, Some(*qualifier)),
        [name, qualifier] => (*name, Some(*qualifier)),
        _ => (reference, None),
    };
    (name.to_string(), qualifier.map(str::to_string))
}

/// The function a path names and the qualifier from the path or the `Qualifier` parameter.
pub(super) fn target(
    request: &Request,
    reference: &str,
) -> Result<(String, Option<String>), ApiError> {
    let (name, in_reference) = split_function(reference);
    let in_query = request.query_param("Qualifier");
    match (in_reference, in_query) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid_parameter(format!(
            "the function reference's qualifier {a} differs from the Qualifier parameter {b}"
        ))),
        (a, b) => Ok((name, a.or(b))),
    }
}

/// `name:qualifier`, or `name` alone: the reference [`split_function`] takes apart.
pub(super) fn qualified(name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => format!("{name}:{q}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_paths_route_with_or_without_a_trailing_slash() {
        assert_eq!(
            route("GET", "/2015-03-31/functions/"),
            Ok(Operation::ListFunctions)
        );
        assert_eq!(
            route("POST", "/2015-03-31/functions"),
            Ok(Operation::CreateFunction)
        );
        assert_eq!(
            route(
                "POST",
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/invocations"
            ),
            Ok(Operation::Invoke(
                "arn:aws:lambda:us-east-1:1:function:f".into()
            ))
        );
        assert_eq!(
            route("DELETE", "/2015-03-31/functions/f/aliases/live"),
            Ok(Operation::DeleteAlias("f".into(), "live".into()))
        );
        assert_eq!(
            route("GET", "/2016-08-19/account-settings/"),
            Ok(Operation::GetAccountSettings)
        );
        assert_eq!(
            route("PATCH", "/url/web/a/b%20c"),
            Ok(Operation::FunctionUrl("web".into(), "/a/b%20c".into()))
        );
        assert_eq!(
            route("GET", "/url/web"),
            Ok(Operation::FunctionUrl("web".into(), "/".into()))
        );
    }

    #[test]
    fn a_wrong_method_names_the_right_ones() {
        let error = route("GET", "/2015-03-31/functions/f/invocations").unwrap_err();
        assert_eq!(error.name, "UnknownOperationException");
        assert!(error.message.contains("takes POST"), "{}", error.message);
        let error = route("GET", "/nowhere").unwrap_err();
        assert_eq!(error.status, 404);
    }

    #[test]
    fn function_references_split_into_name_and_qualifier() {
        let s = |r: &str| split_function(r);
        assert_eq!(s("f"), ("f".into(), None));
        assert_eq!(s("f:live"), ("f".into(), Some("live".into())));
        assert_eq!(s("123:function:f:2"), ("f".into(), Some("2".into())));
        assert_eq!(
            s("arn:aws:lambda:us-east-1:123:function:f"),
            ("f".into(), None)
        );
    }
}
