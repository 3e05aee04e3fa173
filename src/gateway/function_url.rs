//! Function URLs: any request to `/url/{function}/{path}` becomes a payload-format-2.0
//! event, and the function's answer becomes the HTTP response, as Lambda's Function URLs
//! do (`AuthType` `NONE`; the function's `$LATEST`, or the version or alias after `:`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_sched::InvokeRequest;
use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::context::Context;
use super::message::{Request, Response};
use super::route::split_function;
use super::time_format::{common_log, epoch_millis};

/// Whether a body of this content type travels as text (else base64).
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || ["json", "xml", "javascript", "x-www-form-urlencoded", "yaml"]
            .iter()
            .any(|kind| essence.contains(kind))
}

/// Response headers a function may not set: they frame the HTTP message or belong to the
/// connection (taking them from a function would let it split or smuggle responses on a
/// kept-alive connection), or the gateway sets them itself.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-amzn-requestid",
];

/// Whether a function may set response header `name`.
fn settable(name: &str) -> bool {
    !RESERVED_HEADERS
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
}

/// The event for `request`, whose path below the function is `path` (still
/// percent-encoded, as Lambda passes `rawPath`).
pub(super) fn event(request: &Request, function: &str, path: &str, now: SystemTime) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_string()));
            continue;
        }
        headers
            .entry(name.as_str().to_string())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in request.query_pairs() {
        query
            .entry(key)
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let text =
        is_text(request.header("content-type")) && std::str::from_utf8(&request.body).is_ok();
    let body = if text {
        String::from_utf8_lossy(&request.body).into_owned()
    } else {
        STANDARD.encode(&request.body)
    };
    let host = request.header("host").unwrap_or("localhost").to_string();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": request.query.clone().unwrap_or_default(),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": function,
            "domainName": host,
            "domainPrefix": function,
            "http": {
                "method": request.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.peer.ip().to_string(),
                "userAgent": request.header("user-agent").unwrap_or(""),
            },
            "requestId": request.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": common_log(now),
            "timeEpoch": epoch_millis(now),
        },
        "isBase64Encoded": !text,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !request.body.is_empty() {
        event["body"] = json!(body);
    }
    event
}

/// The HTTP response for a function's answer: a response object (`statusCode`, `headers`,
/// `cookies`, `body`, `isBase64Encoded`) is taken apart; any other answer is a 200 with the
/// answer as a JSON body, as Lambda infers it.
pub(super) fn response(payload: &[u8]) -> Result<Response, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            502,
            "BadGateway",
            format!("the function's answer is not a valid Function URL response: {why}"),
        )
    };
    let value: Option<Value> = serde_json::from_slice(payload).ok();
    let object: Option<&Map<String, Value>> = value.as_ref().and_then(Value::as_object);
    let Some(object) = object.filter(|o| o.contains_key("statusCode")) else {
        return Ok(Response {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: payload.to_vec(),
        });
    };
    let status = object["statusCode"]
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| bad("statusCode is not an HTTP status"))? as u16;
    let mut headers = Vec::new();
    if let Some(map) = object.get("headers").and_then(Value::as_object) {
        for (name, value) in map {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || hyper::header::HeaderValue::from_str(&value).is_err()
            {
                return Err(bad(&format!("header {name:?} is not a valid HTTP header")));
            }
            if settable(name) {
                headers.push((name.clone(), value));
            }
        }
    }
    if let Some(cookies) = object.get("cookies").and_then(Value::as_array) {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            if hyper::header::HeaderValue::from_str(cookie).is_err() {
                return Err(bad("a cookie is not a valid header value"));
            }
            headers.push(("Set-Cookie".into(), cookie.to_string()));
        }
    }
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => {
            if object.get("isBase64Encoded") == Some(&Value::Bool(true)) {
                STANDARD
                    .decode(text)
                    .map_err(|_| bad("isBase64Encoded is true and body is not base64"))?
            } else {
                text.clone().into_bytes()
            }
        }
        Some(other) => other.to_string().into_bytes(),
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Calls `reference` (a function, or `function:qualifier`) for a Function URL request.
pub(super) fn call(
    context: &Context,
    request: &Request,
    reference: &str,
    path: &str,
) -> Result<Response, ApiError> {
    let (name, qualifier) = split_function(reference);
    let event = event(request, &name, path, SystemTime::now());
    let mut invoke = InvokeRequest::new(name, event.to_string());
    invoke.qualifier = qualifier;
    let answer = context.service.invoke(invoke)?;
    if answer.function_error.is_some() {
        // As Lambda: the caller learns that the function failed, not how.
        return Ok(Response {
            status: 502,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"Message":"Internal Server Error"}"#.to_vec(),
        }
        .with_header("x-amzn-RequestId", answer.request_id));
    }
    Ok(response(&answer.payload)?.with_header("x-amzn-RequestId", answer.request_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::message::decode_query;
    use std::time::{Duration, UNIX_EPOCH};

    fn request(query: Option<&str>, body: &[u8], content_type: Option<&str>) -> Request {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("host", "127.0.0.1:9000".parse().unwrap());
        headers.insert("cookie", "a=1; b=2".parse().unwrap());
        headers.append("x-many", "one".parse().unwrap());
        headers.append("x-many", "two".parse().unwrap());
        if let Some(ct) = content_type {
            headers.insert("content-type", ct.parse().unwrap());
        }
        Request {
            method: "POST".into(),
            path: "/url/web/a%20b".into(),
            query: query.map(str::to_string),
            headers,
            body: bytes::Bytes::copy_from_slice(body),
            peer: "127.0.0.7:5555".parse().unwrap(),
            request_id: "rid".into(),
        }
    }

    #[test]
    fn a_request_becomes_a_version_2_event() {
        let now = UNIX_EPOCH + Duration::from_millis(1_796_459_407_250);
        let e = event(
            &request(Some("x=1&x=2&y=a+b"), b"hello", Some("text/plain")),
            "web",
            "/a%20b",
            now,
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/a%20b");
        assert_eq!(e["requestContext"]["http"]["path"], "/a%20b");
        assert_eq!(e["rawQueryString"], "x=1&x=2&y=a+b");
        assert_eq!(e["queryStringParameters"]["x"], "1,2");
        assert_eq!(e["queryStringParameters"]["y"], "a b");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["headers"]["x-many"], "one,two");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.7");
        assert_eq!(e["requestContext"]["time"], "05/Dec/2026:08:30:07 +0000");
        assert_eq!(e["requestContext"]["timeEpoch"], 1_796_459_407_250u64);
        assert_eq!(e["body"], "hello");
        assert_eq!(e["isBase64Encoded"], false);
        let binary = event(
            &request(None, &[0xff, 0], Some("application/octet-stream")),
            "web",
            "/",
            now,
        );
        assert_eq!(binary["body"], "/wA=");
        assert_eq!(binary["isBase64Encoded"], true);
        assert!(binary.get("queryStringParameters").is_none());
        assert_eq!(decode_query("a%2Bb+c"), "a+b c");
    }

    #[test]
    fn a_response_object_is_taken_apart() {
        let r = response(
            br#"{"statusCode":201,"headers":{"x-a":"1"},"cookies":["c=3"],"body":"aGk=","isBase64Encoded":true}"#,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"hi");
        assert!(r.headers.contains(&("x-a".into(), "1".into())));
        assert!(r.headers.contains(&("Set-Cookie".into(), "c=3".into())));
        // Framing and connection headers from the function are dropped: a function cannot
        // split the response or speak for the connection.
        let framed = response(
            br#"{"statusCode":200,"headers":{"Content-Length":"0","transfer-encoding":"chunked","Connection":"keep-alive","X-Amzn-RequestId":"forged","x-ok":"1"},"body":"HTTP/1.1 200 OK"}"#,
        )
        .unwrap();
        assert_eq!(framed.headers, vec![("x-ok".to_string(), "1".to_string())]);
        let plain = response(br#"{"message":"hi"}"#).unwrap();
        assert_eq!(
            (plain.status, plain.body.as_slice()),
            (200, &br#"{"message":"hi"}"#[..])
        );
        let text = response(b"not json").unwrap();
        assert_eq!(text.status, 200);
        assert_eq!(response(br#"{"statusCode":99}"#).unwrap_err().status, 502);
        assert_eq!(
            response(br#"{"statusCode":200,"headers":{"bad\nname":"x"}}"#)
                .unwrap_err()
                .status,
            502
        );
    }
}
