//! Lambda's pagination of lists: `MaxItems` (1-10,000; 50 when absent) items from `Marker`,
//! and `NextMarker` when more follow. A marker is the position of the page's first item.

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::message::Request;

/// Items per page when `MaxItems` is absent, as Lambda's lists page.
const DEFAULT_PAGE: usize = 50;

/// The most items a page may have.
const MAX_PAGE: usize = 10_000;

/// The page of `items` the request asks for, as `{"<key>": [...], "NextMarker": ...}`.
pub(super) fn page<T: serde::Serialize>(
    request: &Request,
    key: &str,
    items: Vec<T>,
) -> Result<Value, ApiError> {
    let size = match request.query_param("MaxItems") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!("MaxItems is 1-10000, not {text:?}"))
            })?,
    };
    let start = match request.query_param("Marker") {
        None => 0,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= items.len())
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!("Marker {text:?} is not one this list gave"))
            })?,
    };
    let end = start.saturating_add(size).min(items.len());
    let more = end < items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(end - start).collect();
    let mut body = json!({ key: page });
    if more {
        body["NextMarker"] = json!(end.to_string());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: Some(query.into()),
            headers: hyper::HeaderMap::new(),
            body: bytes::Bytes::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn pages_follow_markers_to_the_end() {
        let items: Vec<u32> = (0..5).collect();
        let first = page(&request("MaxItems=2"), "Items", items.clone()).unwrap();
        assert_eq!(first, json!({"Items": [0, 1], "NextMarker": "2"}));
        let last = page(&request("MaxItems=2&Marker=4"), "Items", items.clone()).unwrap();
        assert_eq!(last, json!({"Items": [4]}));
        let all = page(&request(""), "Items", items.clone()).unwrap();
        assert_eq!(all, json!({"Items": [0, 1, 2, 3, 4]}));
        for bad in ["MaxItems=0", "MaxItems=x", "Marker=9", "Marker=-1"] {
            assert!(
                page(&request(bad), "Items", items.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
