//! AWS Signature Version 4, verified: when the gateway is given credentials, every API
//! request must be signed with them (as the AWS CLI and SDKs sign), within 15 minutes of
//! the gateway's clock, over its exact body. Function URLs are signed too (`AuthType`
//! `AWS_IAM`) unless the gateway opens them ([`super::GatewayConfig::open_function_urls`]).
//!
//! [`check_head`] runs on the headers alone, before the body is read, so a client without
//! the access key cannot make the gateway read (up to 70 MB of) a body; [`verify`] then
//! checks the signature over the whole request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use hyper::header::HeaderMap;
use sha2::{Digest, Sha256};

use super::api_error::ApiError;
use super::message::{Request, decode_query};
use super::time_format::compact;

/// The access key a gateway accepts, and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// The secret access key (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How far a request's `X-Amz-Date` may be from the gateway's clock, as Lambda allows.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(403, "InvalidSignatureException", message)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes everything but RFC 3986's unreserved characters (and `/` when
/// `keep_slash`), as SigV4's canonical forms do.
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte);
        if unreserved || (keep_slash && byte == b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, ApiError> {
    let fields = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| invalid("the Authorization header is not AWS4-HMAC-SHA256"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for field in fields.split(',') {
        let (key, value) = field
            .trim()
            .split_once('=')
            .ok_or_else(|| invalid("the Authorization header is malformed"))?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(invalid(
            "the Authorization header lacks Credential, SignedHeaders or Signature",
        ));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(invalid(
            "Credential is not ACCESS_KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// The canonical request SigV4 signs.
fn canonical_request(request: &Request, signed_headers: &[&str]) -> Result<String, ApiError> {
    let path = uri_encode(request.path.as_str(), true);
    let mut query: Vec<(String, String)> = request
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // Decoded as the operation reads it (`+` is a space), then encoded the canonical
            // way: the signature covers the values the operation acts on.
            let decode = |t: &str| decode_query(t);
            (
                uri_encode(&decode(key), false),
                uri_encode(&decode(value), false),
            )
        })
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                let text = String::from_utf8_lossy(v.as_bytes());
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(invalid(format!(
                "signed header {name} is not in the request"
            )));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    // The body is always hashed: a client's `X-Amz-Content-SHA256` is a claim to check,
    // not a substitute for the body (else a signed request could be replayed with another).
    let payload = hex(&Sha256::digest(&request.body));
    match request.header("x-amz-content-sha256") {
        None => {}
        Some(claimed) if claimed.eq_ignore_ascii_case(&payload) => {}
        Some(claimed) if claimed == "UNSIGNED-PAYLOAD" || claimed.starts_with("STREAMING-") => {
            return Err(invalid(format!(
                "X-Amz-Content-SHA256 {claimed} is not accepted: sign the payload's SHA-256"
            )));
        }
        Some(_) => {
            return Err(invalid(
                "X-Amz-Content-SHA256 does not match the SHA-256 of the request body",
            ));
        }
    }
    Ok(format!(
        "{}\n{path}\n{}\n{headers}\n{}\n{payload}",
        request.method,
        query.join("&"),
        signed_headers.join(";")
    ))
}

/// Parses `20261205T083000Z`.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    if text.len() != 16 || text.as_bytes()[8] != b'T' || !text.ends_with('Z') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = lambda_core::calendar::days_from_civil(year, month, day)?;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// A header's value, when it is present and visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks what can be checked from the headers alone, at time `now`: the request is signed
/// with `credentials`' access key, for service `lambda`, at a time within 15 minutes.
pub(super) fn check_head(
    credentials: &Credentials,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<(), ApiError> {
    signed_head(credentials, headers, now).map(|_| ())
}

/// [`check_head`], returning the parsed `Authorization` and `X-Amz-Date`.
fn signed_head<'a>(
    credentials: &Credentials,
    headers: &'a HeaderMap,
    now: SystemTime,
) -> Result<(Authorization<'a>, &'a str), ApiError> {
    let authorization = header(headers, "authorization")
        .ok_or_else(|| invalid("Missing Authentication Token: the request is not signed"))?;
    let auth = parse_authorization(authorization)?;
    if auth.access_key_id != credentials.access_key_id {
        return Err(ApiError::new(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let amz_date =
        header(headers, "x-amz-date").ok_or_else(|| invalid("the request has no X-Amz-Date"))?;
    let signed_at =
        parse_amz_date(amz_date).ok_or_else(|| invalid("X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
    let skew = now
        .duration_since(signed_at)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is more than 15 minutes from the gateway's time {}",
            compact(now)
        )));
    }
    if auth.date.len() != 8 || amz_date.get(..8) != Some(auth.date) {
        return Err(invalid(
            "the credential's date is not the day of X-Amz-Date",
        ));
    }
    if auth.service != "lambda" {
        return Err(invalid(format!(
            "the credential's service is {:?}; requests to Lambda are signed for \"lambda\"",
            auth.service
        )));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(invalid("the signature must cover the host header"));
    }
    Ok((auth, amz_date))
}

/// Checks `request`'s signature against `credentials` at time `now`.
pub(super) fn verify(
    credentials: &Credentials,
    request: &Request,
    now: SystemTime,
) -> Result<(), ApiError> {
    let (auth, amz_date) = signed_head(credentials, &request.headers, now)?;
    let canonical = canonical_request(request, &auth.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = [auth.date, auth.region, auth.service, "aws4_request"]
        .iter()
        .fold(
            format!("AWS4{}", credentials.secret_access_key).into_bytes(),
            |key, part| hmac(&key, part.as_bytes()),
        );
    let expected = hex(&hmac(&key, to_sign.as_bytes()));
    // Compared in full, whatever differs first, so the time taken tells nothing.
    let same = expected.len() == auth.signature.len()
        && expected
            .bytes()
            .zip(auth.signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(invalid(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request botocore signed (SigV4Auth, lambda, us-east-1) at 2026-12-05T08:48:43Z.
    fn signed_request(signature: &str) -> Request {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("host", "127.0.0.1:9000".parse().unwrap());
        headers.insert("x-amz-invocation-type", "RequestResponse".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-amz-date", "20261205T084843Z".parse().unwrap());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/us-east-1/lambda/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type, \
             Signature={signature}"
        );
        headers.insert("authorization", authorization.parse().unwrap());
        Request {
            method: "POST".into(),
            path: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho/invocations".into(),
            query: Some("Qualifier=live&b=a%20b".into()),
            headers,
            body: bytes::Bytes::from_static(br#"{"hi":1}"#),
            peer: "127.0.0.1:1".parse().unwrap(),
            request_id: "r".into(),
        }
    }

    const BOTOCORE: &str = "17860020d72ee387e768d259413e5bb1d811382b8c00eff48436def1b0775985";

    fn credentials(secret: &str) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: secret.into(),
        }
    }

    fn at(text: &str) -> SystemTime {
        parse_amz_date(text).unwrap()
    }

    #[test]
    fn botocores_signature_verifies() {
        let key = credentials("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let now = at("20261205T085000Z");
        assert_eq!(verify(&key, &signed_request(BOTOCORE), now), Ok(()));
        // Another secret, a changed signature, a changed body: refused.
        let wrong = credentials("another secret");
        let refused = verify(&wrong, &signed_request(BOTOCORE), now).unwrap_err();
        assert_eq!(
            (refused.status, refused.name),
            (403, "InvalidSignatureException")
        );
        let tampered = BOTOCORE.replace('1', "2");
        assert!(verify(&key, &signed_request(&tampered), now).is_err());
        let mut changed = signed_request(BOTOCORE);
        changed.body = bytes::Bytes::from_static(br#"{"hi":2}"#);
        assert!(verify(&key, &changed, now).is_err());
        // Too old.
        let late = verify(&key, &signed_request(BOTOCORE), at("20261205T090500Z")).unwrap_err();
        assert!(late.message.contains("expired"), "{}", late.message);
        // Another access key.
        let stranger = Credentials {
            access_key_id: "SOMEONE".into(),
            secret_access_key: "x".into(),
        };
        let unknown = verify(&stranger, &signed_request(BOTOCORE), now).unwrap_err();
        assert_eq!(unknown.name, "UnrecognizedClientException");
    }

    #[test]
    fn the_body_is_hashed_whatever_the_client_claims() {
        let key = credentials("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let now = at("20261205T085000Z");
        let with_claim = |claim: &str| {
            let mut request = signed_request(BOTOCORE);
            request
                .headers
                .insert("x-amz-content-sha256", claim.parse().unwrap());
            verify(&key, &request, now)
        };
        // The true hash of the body is fine.
        let hash = hex(&Sha256::digest(br#"{"hi":1}"#));
        assert_eq!(with_claim(&hash), Ok(()));
        // A claim that does not match the body, as a replay with another body would carry.
        let other = hex(&Sha256::digest(br#"{"hi":2}"#));
        let mut replayed = signed_request(BOTOCORE);
        replayed.body = bytes::Bytes::from_static(br#"{"hi":2}"#);
        replayed
            .headers
            .insert("x-amz-content-sha256", hash.parse().unwrap());
        let refused = verify(&key, &replayed, now).unwrap_err();
        assert!(
            refused.message.contains("does not match"),
            "{}",
            refused.message
        );
        assert!(with_claim(&other).is_err());
        for unsigned in ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"] {
            let refused = with_claim(unsigned).unwrap_err();
            assert!(
                refused.message.contains("not accepted"),
                "{}",
                refused.message
            );
        }
    }

    #[test]
    fn the_credential_scope_is_checked_before_the_body() {
        let key = credentials("secret");
        let now = at("20261205T085000Z");
        let head = |credential: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-amz-date", "20261205T084843Z".parse().unwrap());
            let value = format!(
                "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, \
                 Signature=00"
            );
            headers.insert("authorization", value.parse().unwrap());
            check_head(&key, &headers, now)
        };
        assert_eq!(
            head("AKIDEXAMPLE/20261205/us-east-1/lambda/aws4_request"),
            Ok(())
        );
        for (credential, why) in [
            ("AKIDEXAMPLE/2026120/us-east-1/lambda/aws4_request", "date"),
            ("AKIDEXAMPLE//us-east-1/lambda/aws4_request", "date"),
            ("AKIDEXAMPLE/20261204/us-east-1/lambda/aws4_request", "date"),
            ("AKIDEXAMPLE/20261205/us-east-1/s3/aws4_request", "service"),
        ] {
            let refused = head(credential).unwrap_err();
            assert!(
                refused.message.contains(why),
                "{credential}: {}",
                refused.message
            );
        }
        let stranger = head("SOMEONE/20261205/us-east-1/lambda/aws4_request").unwrap_err();
        assert_eq!(stranger.name, "UnrecognizedClientException");
        assert!(check_head(&key, &HeaderMap::new(), now).is_err());
    }

    #[test]
    fn dates_parse_as_the_calendar_prints_them() {
        assert_eq!(at("19700101T000000Z"), UNIX_EPOCH);
        assert_eq!(
            at("20000229T000000Z"),
            UNIX_EPOCH + Duration::from_secs(951_782_400)
        );
        assert_eq!(compact(at("20261205T084843Z")), "20261205T084843Z");
        for bad in [
            "2026-12-05",
            "20261305T000000Z",
            "20261205T250000Z",
            "x0261205T000000Z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }
}
