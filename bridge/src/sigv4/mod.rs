//! AWS Signature Version 4 verification (header-signed requests), as pure functions in
//! the style of s3s: parse the `Authorization` header, then recompute the signature
//! from the request as received and compare it in constant time.
//!
//! Written on `hmac` + `sha2` rather than the `aws-sigv4` crate that DESIGN.md §8
//! names, after trying it (aws-sigv4 1.6.4 plus aws-credential-types for its
//! credentials, in a scratch crate with this crate's dependencies, on this 2-core
//! machine):
//! - weight: 40 more crates (78 → 118 distinct; `cargo tree` 148 → 224 lines), among
//!   them `time`, `aws-smithy-{types,http,runtime-api,async}` and second copies of
//!   `hmac`/`sha2`/`digest` (0.13/0.11 beside our 0.12/0.10); 34 s more to build
//!   them;
//! - fit: it is a signer, so verifying means rebuilding the client's request for it,
//!   and it decides the signed headers itself. It always adds and signs `x-amz-date`
//!   (a request signed with `Date` cannot be reproduced without abusing
//!   `excluded_headers`), takes header values only as `&str`, needs an absolute URI
//!   (it panics on a missing authority), and parses the query with
//!   `form_urlencoded` (a `+` becomes a space). Each needs a workaround, and the
//!   verifier still has to parse `Authorization`, check the clock and compare.
//!
//! The signing recipe is ~150 lines here (the rest is parsing and dates), pinned by
//! known answers: captures of boto3 requests, requests signed by botocore 1.44 for
//! the edge cases (double-encoded path, dot segments, query ordering, `Date` header,
//! `X-Amz-Content-Sha256`, header whitespace), and vectors of the AWS SigV4 test
//! suite.
//!
//! What AWS's rules are, for a non-S3 service (botocore's `SigV4Auth`):
//! - canonical URI: the path as received, dot segments and empty segments removed,
//!   then URI-encoded *again* (the client encoded each segment once to send it, the
//!   canonical form encodes it twice), so `%3D` on the wire is `%253D` and `@` is
//!   `%40`; an empty path is `/`;
//! - canonical query: each `name=value` pair decoded and re-encoded with RFC 3986's
//!   unreserved set, sorted by name then value;
//! - canonical headers: the signed headers in the order `SignedHeaders` lists them,
//!   lower-case names, values trimmed with inner whitespace runs made one space, a
//!   repeated header's values joined with `,`;
//! - payload: the hex SHA-256 of the body, or the `X-Amz-Content-Sha256` header.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::percent::percent_decode;

mod cache;
mod time;
pub use cache::KeyCache;
pub use time::{format_basic, format_iso_ms, parse_iso_ms};
use time::{parse_basic, parse_http_date, unix_seconds};

/// The only algorithm verified (SigV4A's `AWS4-ECDSA-P256-SHA256` is not).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// `X-Amz-Content-Sha256` value of a client that did not hash the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far AWS lets a request's time be from its own clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    /// The credential scope's date, `yyyymmdd`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// As listed, which is the order the client wrote the canonical headers in.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// What the verifier needs of a request. `path` and `query` are exactly as received
/// on the wire (still percent-encoded); `headers` are all request headers (name, raw
/// value) in any case, possibly repeated.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// Why a request is refused. The messages are AWS's where AWS's are known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// A malformed or missing part of the signature: AWS's `IncompleteSignature`.
    #[error("{0}")]
    Incomplete(String),
    /// The signature is not the one the secret gives: `SignatureDoesNotMatch`. Like
    /// AWS's, the message then shows the canonical request and the string to sign:
    /// no secret, but the signed headers' values (a session token among them, if
    /// signed), so it is for the client, not for logs.
    #[error("{0}")]
    Mismatch(String),
    /// The request time is too far from the server's clock. SQS's Query protocol
    /// reports it as `SignatureDoesNotMatch` (HTTP 403) with this message; AWS's JSON
    /// services as `InvalidSignatureException`.
    #[error("{0}")]
    Expired(String),
    /// Neither `X-Amz-Date` nor `Date` holds a time: `IncompleteSignature`.
    #[error("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")]
    MissingDate,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/sqs/aws4_request,
/// SignedHeaders=a;b, Signature=hex`. The three parameters may come in any order,
/// each once.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigV4Error> {
    let value = value.trim_matches(is_space);
    let (algorithm, params) = value.split_once(is_space).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'."
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for param in params.split(',') {
        let param = param.trim_matches(is_space);
        if param.is_empty() {
            continue;
        }
        let Some((name, value)) = param.split_once('=') else {
            return Err(incomplete_param(param));
        };
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(incomplete_param(param)),
        };
        if slot.replace(value).is_some() {
            return Err(SigV4Error::Incomplete(format!(
                "Authorization header has '{name}' more than once."
            )));
        }
    }
    // AWS names every missing parameter at once.
    let mut missing = String::new();
    for (name, value) in [
        ("Credential", credential),
        ("SignedHeaders", signed_headers),
        ("Signature", signature),
    ] {
        if value.is_none_or(str::is_empty) {
            let _ = write!(
                missing,
                "Authorization header requires '{name}' parameter. "
            );
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature), true) =
        (credential, signed_headers, signature, missing.is_empty())
    else {
        return Err(SigV4Error::Incomplete(missing.trim_end().to_owned()));
    };

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be 'access key/yyyymmdd/region/service/aws4_request', not '{credential}'."
        )));
    };
    if terminator != "aws4_request" {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped to a date in the form yyyymmdd, not '{date}'."
        )));
    }
    for (what, part) in [
        ("an access key", access_key),
        ("a region", region),
        ("a service", service),
    ] {
        if part.is_empty() {
            return Err(SigV4Error::Incomplete(format!(
                "Credential should name {what}: '{credential}'."
            )));
        }
    }
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(SigV4Error::Incomplete(format!(
            "SignedHeaders has an empty header name: '{}'.",
            signed_headers.join(";")
        )));
    }
    Ok(Authorization {
        access_key: access_key.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: signature.to_owned(),
    })
}

fn incomplete_param(param: &str) -> SigV4Error {
    SigV4Error::Incomplete(format!(
        "Authorization header parameter '{param}' is not Credential, SignedHeaders or Signature."
    ))
}

/// Verifies the signature with `secret`, and the request time (`X-Amz-Date`, or
/// `Date`) within `max_skew` (AWS: 15 min) of `now`.
///
/// Region and service are the caller's to check against `auth`: they only need to be
/// the ones the client signed with for the signature to match. A hex
/// `X-Amz-Content-Sha256` stands for the body in the canonical request, and the body
/// must then have that digest (or the body would not be covered at all);
/// `UNSIGNED-PAYLOAD` leaves the body out of the signature, as AWS allows. Over
/// HTTP/2, the caller passes `:authority` as a `host` header.
pub fn verify(
    req: &Request,
    auth: &Authorization,
    secret: &str,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), SigV4Error> {
    verify_with_key(req, auth, now, max_skew, || {
        signing_key(secret, &auth.date, &auth.region, &auth.service)
    })
}

/// [`verify`] with the signing key from `key` (a [`KeyCache`]'s), asked for only
/// once the cheap checks passed.
pub fn verify_with_key(
    req: &Request,
    auth: &Authorization,
    now: SystemTime,
    max_skew: Duration,
    key: impl FnOnce() -> [u8; 32],
) -> Result<(), SigV4Error> {
    // Without Host in the signature a captured request could be replayed at another
    // endpoint that shares the credentials.
    if !auth
        .signed_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("host") || h == ":authority")
    {
        return Err(SigV4Error::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }

    let request_time = request_time(req.headers)?;
    check_skew(request_time, unix_seconds(now), max_skew)?;
    let timestamp = format_basic(request_time);
    if timestamp[..8] != auth.date {
        return Err(SigV4Error::Mismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{timestamp}'.",
            auth.date,
            &timestamp[..8]
        )));
    }

    let canonical = canonical_request(req, &auth.signed_headers)?;
    let string_to_sign = string_to_sign(&timestamp, &auth.scope(), &canonical);
    let key = key();
    let expected = signature(&key, &string_to_sign);
    let given = auth.signature.to_ascii_lowercase();
    if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return Ok(());
    }
    // AWS shows what it signed, so that a client can find its mistake.
    Err(SigV4Error::Mismatch(format!(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service \
         documentation for details.\n\nThe Canonical String for this request should have \
         been\n'{}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n",
        String::from_utf8_lossy(&canonical)
    )))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

// --- signing ----------------------------------------------------------------------
//
// The steps `verify` takes, public so that a client (the benchmark's) signs with the
// very recipe the server checks.

/// The key that signs a day's requests for one region and service. It changes only
/// with the date, so a client may derive it once a day.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    key
}

/// What is signed: the algorithm, the request time (`X-Amz-Date` form), the
/// credential scope and the hash of the canonical request.
pub fn string_to_sign(timestamp: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request))
    )
}

/// The hex signature `Authorization` carries.
pub fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

impl Authorization {
    /// The credential scope: `yyyymmdd/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The header value, as [`parse_authorization`] reads it.
impl std::fmt::Display for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
            self.access_key,
            self.scope(),
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

/// The canonical request for `signed_headers` (in the order given), as bytes: header
/// values need not be UTF-8. An error when a signed header is not in the request.
pub fn canonical_request(req: &Request, signed_headers: &[String]) -> Result<Vec<u8>, SigV4Error> {
    let payload_hash = payload_hash(req)?;
    let mut out = Vec::with_capacity(256 + req.path.len() + req.query.len());
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.query).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        out.push(b':');
        let mut found = false;
        for (_, value) in req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            if found {
                out.push(b',');
            }
            found = true;
            push_trimmed(&mut out, value);
        }
        if !found {
            return Err(SigV4Error::Mismatch(format!(
                "The request signature we calculated does not match the signature you provided: \
                 signed header '{name}' is not in the request."
            )));
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

/// Appends `value` without leading and trailing whitespace and with each inner run of
/// whitespace made one space, as botocore's `' '.join(value.split())`.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let mut first = true;
    for word in value
        .split(|b| b.is_ascii_whitespace() || *b == 0x0b)
        .filter(|w| !w.is_empty())
    {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(word);
    }
}

fn payload_hash(req: &Request) -> Result<String, SigV4Error> {
    let computed = || hex::encode(Sha256::digest(req.body));
    let Some((_, claimed)) = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-content-sha256"))
    else {
        return Ok(computed());
    };
    let claimed = claimed.trim_ascii();
    if claimed == UNSIGNED_PAYLOAD.as_bytes() {
        return Ok(UNSIGNED_PAYLOAD.to_owned());
    }
    if claimed.len() == 64 && claimed.iter().all(u8::is_ascii_hexdigit) {
        // The client signed this digest, not the body: unless the body has it, the
        // body is not what was signed.
        let claimed = String::from_utf8_lossy(claimed).into_owned();
        if !claimed.eq_ignore_ascii_case(&computed()) {
            return Err(SigV4Error::Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ));
        }
        return Ok(claimed);
    }
    Err(SigV4Error::Incomplete(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value.".into(),
    ))
}

/// RFC 3986's unreserved characters, the only ones SigV4 leaves unencoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn uri_encode(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The path as received with `.`, `..` and empty segments removed (botocore's
/// `remove_dot_segments`), encoded once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 2);
    if path.starts_with('/') {
        normalized.push('/');
    }
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    let mut out = String::with_capacity(normalized.len() + 16);
    uri_encode(&mut out, normalized.as_bytes(), true);
    out
}

/// Each pair decoded (a `+` stays a `+`: it is a space only in forms) and encoded the
/// SigV4 way, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (mut n, mut v) = (String::new(), String::new());
            uri_encode(&mut n, &percent_decode(name.as_bytes(), false), false);
            uri_encode(&mut v, &percent_decode(value.as_bytes(), false), false);
            (n, v)
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 16);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

// --- time -------------------------------------------------------------------------

/// The request's time in Unix seconds: `X-Amz-Date` (`20261125T171309Z`) when present,
/// else `Date` (`Wed, 25 Nov 2026 17:13:09 GMT`, or botocore's `-0000`).
fn request_time(headers: &[(&str, &[u8])]) -> Result<i64, SigV4Error> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| std::str::from_utf8(v.trim_ascii()).unwrap_or(""))
    };
    // A present but unreadable X-Amz-Date is not overridden by Date: the client
    // signed with the former.
    let parsed = match header("x-amz-date") {
        Some(value) => parse_basic(value),
        None => header("date").and_then(|v| parse_basic(v).or_else(|| parse_http_date(v))),
    };
    parsed.ok_or(SigV4Error::MissingDate)
}

fn check_skew(request: i64, now: i64, max_skew: Duration) -> Result<(), SigV4Error> {
    let skew = i64::try_from(max_skew.as_secs()).unwrap_or(i64::MAX);
    let shown = if skew % 60 == 0 {
        format!("{} min.", skew / 60)
    } else {
        format!("{skew} sec.")
    };
    let earliest = now.saturating_sub(skew);
    let latest = now.saturating_add(skew);
    if request < earliest {
        return Err(SigV4Error::Expired(format!(
            "Signature expired: {} is now earlier than {} ({} - {shown})",
            format_basic(request),
            format_basic(earliest),
            format_basic(now)
        )));
    }
    if request > latest {
        return Err(SigV4Error::Expired(format!(
            "Signature not yet current: {} is still later than {} ({} + {shown})",
            format_basic(request),
            format_basic(latest),
            format_basic(now)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_suite;
