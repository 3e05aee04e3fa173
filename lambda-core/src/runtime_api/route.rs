//! The Runtime API's routes: which endpoint a method and path name.

/// The API version prefix of every route.
pub const API_PREFIX: &str = "/2018-06-01";

/// An endpoint of the Runtime API, or why a request names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /2018-06-01/runtime/invocation/next`.
    Next,
    /// `POST /2018-06-01/runtime/invocation/{id}/response`.
    Response(String),
    /// `POST /2018-06-01/runtime/invocation/{id}/error`.
    Error(String),
    /// `POST /2018-06-01/runtime/init/error`.
    InitError,
    /// A known path with the wrong method; holds the method it accepts.
    MethodNotAllowed(&'static str),
    /// No such path.
    NotFound,
}

impl Route {
    /// The route for `method` on `path` (a path without query string).
    pub fn find(method: &str, path: &str) -> Route {
        let Some(rest) = path.strip_prefix(API_PREFIX) else {
            return Route::NotFound;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let (route, allowed) = match segments.as_slice() {
            ["", "runtime", "invocation", "next"] => (Route::Next, "GET"),
            ["", "runtime", "invocation", id, "response"] => {
                (Route::Response((*id).to_string()), "POST")
            }
            ["", "runtime", "invocation", id, "error"] => (Route::Error((*id).to_string()), "POST"),
            ["", "runtime", "init", "error"] => (Route::InitError, "POST"),
            _ => return Route::NotFound,
        };
        if method == allowed {
            route
        } else {
            Route::MethodNotAllowed(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::find("GET", "/2018-06-01/runtime/invocation/next"),
            Route::Next
        );
        assert_eq!(
            Route::find("POST", "/2018-06-01/runtime/invocation/abc/response"),
            Route::Response("abc".into())
        );
        assert_eq!(
            Route::find("POST", "/2018-06-01/runtime/invocation/abc/error"),
            Route::Error("abc".into())
        );
        assert_eq!(
            Route::find("POST", "/2018-06-01/runtime/invocation//response"),
            Route::Response(String::new())
        );
        assert_eq!(
            Route::find("POST", "/2018-06-01/runtime/init/error"),
            Route::InitError
        );
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        assert_eq!(
            Route::find("POST", "/2018-06-01/runtime/invocation/next"),
            Route::MethodNotAllowed("GET")
        );
        assert_eq!(
            Route::find("GET", "/2018-06-01/runtime/init/error"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            Route::find("get", "/2018-06-01/runtime/invocation/next"),
            Route::MethodNotAllowed("GET"),
            "methods are case-sensitive"
        );
        for path in [
            "/",
            "/2018-06-01",
            "/2018-06-01/runtime/invocation/next/",
            "/2018-06-01/runtime/invocation/a/b/response",
            "/2020-01-01/extension/register",
            "/2018-06-01x/runtime/invocation/next",
        ] {
            assert_eq!(Route::find("GET", path), Route::NotFound, "{path}");
        }
    }
}
