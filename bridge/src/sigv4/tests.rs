use super::*;
use std::time::UNIX_EPOCH;

/// The request side of the captures in shared/vectors/aws/ (boto3 1.43.11 against
/// moto on 127.0.0.1:5001, access key `AKIDEXAMPLE`, secret `secret`), verbatim up
/// to the response marker: the tests parse them as raw HTTP.
const CAPTURES: &[(&str, &str)] = &[
    (
        "sqs_json_send",
        r#"POST / HTTP/1.1
Host: 127.0.0.1:5001
Accept-Encoding: identity
X-Amz-Target: AmazonSQS.SendMessage
Content-Type: application/x-amz-json-1.0
x-amzn-query-mode: true
User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,e,Z,N,D cfg/retry-mode#legacy Botocore/1.43.11
X-Amz-Date: 20261125T171309Z
Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-amzn-query-mode, Signature=af6dc955aea277b59b80f41624455865c6df2bda48813ec9fd379c56251cd992
amz-sdk-invocation-id: 84476937-3fb6-499a-b604-2340f99d8900
amz-sdk-request: attempt=1
Content-Length: 159

{"QueueUrl": "http://127.0.0.1:5001/123456789012/orders", "MessageBody": "hello", "MessageAttributes": {"color": {"DataType": "String", "StringValue": "red"}}}

=== RESPONSE ===
"#,
    ),
    (
        "sqs_query_send",
        r#"POST / HTTP/1.1
Host: 127.0.0.1:5001
Accept-Encoding: identity
Content-Type: application/x-www-form-urlencoded; charset=utf-8
User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/D,N,e,Z,b cfg/retry-mode#legacy Botocore/1.43.11
X-Amz-Date: 20261125T171423Z
Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=b843a740b6c3c887f9a2a9d1cbcb149e6df8ad99f6fba46aa749291f914ea8b1
amz-sdk-invocation-id: ca850583-59b5-4afe-aea8-a33d46ea4b0d
amz-sdk-request: attempt=1
Content-Length: 230

Action=SendMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2F127.0.0.1%3A5001%2F123456789012%2Forders&MessageBody=hello&MessageAttribute.1.Name=color&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=red

=== RESPONSE ===
"#,
    ),
    (
        "sqs_query_receive",
        r#"POST / HTTP/1.1
Host: 127.0.0.1:5001
Accept-Encoding: identity
Content-Type: application/x-www-form-urlencoded; charset=utf-8
User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/D,N,e,Z,b cfg/retry-mode#legacy Botocore/1.43.11
X-Amz-Date: 20261125T171423Z
Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=9d56e143f1afdb09405df52eedac4d4243a5cc945eb3163b8efe039b0e248675
amz-sdk-invocation-id: c21f46b0-49d5-4840-ae09-2353bc2fae39
amz-sdk-request: attempt=1
Content-Length: 170

Action=ReceiveMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2F127.0.0.1%3A5001%2F123456789012%2Forders&AttributeName.1=ApproximateReceiveCount&MessageAttributeName.1=All

=== RESPONSE ===
"#,
    ),
    (
        "sqs_json_error",
        r#"POST / HTTP/1.1
Host: 127.0.0.1:5001
Accept-Encoding: identity
X-Amz-Target: AmazonSQS.GetQueueUrl
Content-Type: application/x-amz-json-1.0
x-amzn-query-mode: true
User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,e,Z,N,D cfg/retry-mode#legacy Botocore/1.43.11
X-Amz-Date: 20261125T171309Z
Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-amzn-query-mode, Signature=0a10c6bb9143a993abad9ca57622b25b7468611f6d40c861593ddcfe3611bc29
amz-sdk-invocation-id: a4aa3515-1424-423f-be6a-2c2e805e08dd
amz-sdk-request: attempt=1
Content-Length: 21

{"QueueName": "nope"}

=== RESPONSE ===
"#,
    ),
    (
        "sqs_query_error",
        r#"POST / HTTP/1.1
Host: 127.0.0.1:5001
Accept-Encoding: identity
Content-Type: application/x-www-form-urlencoded; charset=utf-8
User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/D,N,e,Z,b cfg/retry-mode#legacy Botocore/1.43.11
X-Amz-Date: 20261125T171423Z
Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=09fbc69823d4ba8bca4458c01d9368494ab2d14029f7b515c8e07c0e2868200a
amz-sdk-invocation-id: cb76a959-ba83-4351-84fa-36473cb7c149
amz-sdk-request: attempt=1
Content-Length: 52

Action=GetQueueUrl&Version=2012-11-05&QueueName=nope

=== RESPONSE ===
"#,
    ),
    (
        "sns_query_publish",
        r#"POST / HTTP/1.1
Host: 127.0.0.1:5001
Accept-Encoding: identity
Content-Type: application/x-www-form-urlencoded; charset=utf-8
User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,D,N,e,Z cfg/retry-mode#legacy Botocore/1.43.11
X-Amz-Date: 20261125T170051Z
Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=3a23a7531d37e6b3bc7fed65a98f2ef22cedc0b0bea9813de7e8ae9e04f7c775
amz-sdk-invocation-id: 74aa56de-d9f7-47d6-b260-efa3889908ad
amz-sdk-request: attempt=1
Content-Length: 232

Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aevents&Message=hi&MessageAttributes.entry.1.Name=k&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=v

=== RESPONSE ===
"#,
    ),
    (
        "sns_query_error",
        r#"POST / HTTP/1.1
Host: 127.0.0.1:5001
Accept-Encoding: identity
Content-Type: application/x-www-form-urlencoded; charset=utf-8
User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v782 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,D,N,e,Z cfg/retry-mode#legacy Botocore/1.43.11
X-Amz-Date: 20261125T170051Z
Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=4d99909dfbd6bf7ad11271400b78c56a98184694e670e48406a7b145f5ae39df
amz-sdk-invocation-id: 5dd965b2-2a12-4be8-b6e1-2607e75122c5
amz-sdk-request: attempt=1
Content-Length: 106

Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aeventsx&Message=hi

=== RESPONSE ===
"#,
    ),
];

/// A request as parsed from raw HTTP text.
pub(super) struct Raw {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: Vec<u8>,
}

impl Raw {
    /// Headers until the blank line, then exactly `Content-Length` bytes of body;
    /// what follows up to `=== RESPONSE ===` may only be the capture's newlines.
    pub(super) fn parse(text: &str) -> Raw {
        let request = text.split("\n=== RESPONSE ===").next().unwrap_or(text);
        let (head, rest) = request.split_once("\n\n").expect("a blank line");
        let mut lines = head.lines();
        let mut request_line = lines.next().expect("a request line").split(' ');
        let method = request_line.next().expect("a method").to_owned();
        let target = request_line.next().expect("a target");
        assert_eq!(request_line.next(), Some("HTTP/1.1"));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers: Vec<(String, Vec<u8>)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("name: value");
                (name.to_owned(), value.trim().as_bytes().to_vec())
            })
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| {
                std::str::from_utf8(v).unwrap().parse::<usize>().unwrap()
            });
        let (body, trailer) = rest.as_bytes().split_at(length);
        assert!(
            trailer.iter().all(|&b| b == b'\n'),
            "body longer than Content-Length"
        );
        Raw {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.to_vec(),
        }
    }

    pub(super) fn header(&self, name: &str) -> &str {
        let (_, value) = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .expect("the header");
        std::str::from_utf8(value).unwrap()
    }

    pub(super) fn header_refs(&self) -> Vec<(&str, &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect()
    }

    /// The request's own time, so that only the signature is under test.
    pub(super) fn signed_at(&self) -> SystemTime {
        let date = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-amz-date"));
        let t = if date {
            parse_basic(self.header("x-amz-date"))
        } else {
            parse_http_date(self.header("date"))
        };
        at(t.expect("a request time"))
    }

    /// The request as the verifier sees it, over `headers` from [`Raw::header_refs`].
    pub(super) fn request<'a>(&'a self, headers: &'a [(&'a str, &'a [u8])]) -> Request<'a> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers,
            body: &self.body,
        }
    }

    pub(super) fn verify_with(&self, secret: &str, now: SystemTime) -> Result<(), SigV4Error> {
        let headers = self.header_refs();
        let req = self.request(&headers);
        let auth = parse_authorization(self.header("authorization"))?;
        verify(&req, &auth, secret, now, MAX_SKEW)
    }

    pub(super) fn verify(&self, secret: &str) -> Result<(), SigV4Error> {
        self.verify_with(secret, self.signed_at())
    }
}

pub(super) fn at(unix: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap())
}

pub(super) fn capture(name: &str) -> Raw {
    let (_, text) = CAPTURES
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a capture");
    Raw::parse(text)
}

pub(super) fn is_mismatch(r: Result<(), SigV4Error>) -> bool {
    matches!(r, Err(SigV4Error::Mismatch(_)))
}

pub(super) fn is_incomplete(r: Result<(), SigV4Error>) -> bool {
    matches!(r, Err(SigV4Error::Incomplete(_)))
}

/// The public signing steps give botocore's signature back, and the header they
/// format parses to the same parts: what a client that signs with them relies on.
#[test]
fn signing_steps_reproduce_captured_signatures() {
    for (name, _) in CAPTURES {
        let raw = capture(name);
        let auth = parse_authorization(raw.header("authorization")).unwrap();
        let headers = raw.header_refs();
        let req = raw.request(&headers);
        let timestamp = format_basic(unix_seconds(raw.signed_at()));
        let canonical = canonical_request(&req, &auth.signed_headers).unwrap();
        let key = signing_key("secret", &auth.date, &auth.region, &auth.service);
        let signed = signature(&key, &string_to_sign(&timestamp, &auth.scope(), &canonical));
        assert_eq!(signed, auth.signature, "{name}");
        assert_eq!(parse_authorization(&auth.to_string()), Ok(auth), "{name}");
    }
}

#[test]
fn captured_boto3_requests_verify() {
    // The README guarantees the two sends; the other captures verify as well.
    for (name, _) in CAPTURES {
        assert_eq!(capture(name).verify("secret"), Ok(()), "{name}");
    }
}

#[test]
fn captured_requests_verify_with_cached_keys() {
    let cache = KeyCache::new();
    // Twice: the second round takes every key from the cache.
    for _ in 0..2 {
        for (name, _) in CAPTURES {
            let raw = capture(name);
            let headers = raw.header_refs();
            let req = raw.request(&headers);
            let auth = parse_authorization(raw.header("authorization")).unwrap();
            let now = raw.signed_at();
            assert_eq!(
                cache.verify(&req, &auth, "secret", now, MAX_SKEW),
                Ok(()),
                "{name}"
            );
            let wrong = cache.verify(&req, &auth, "Secret", now, MAX_SKEW);
            assert!(is_mismatch(wrong), "{name}");
        }
    }
}

#[test]
fn capture_parses_as_sent() {
    let raw = capture("sqs_query_send");
    assert_eq!(
        (raw.method.as_str(), raw.path.as_str(), raw.query.as_str()),
        ("POST", "/", "")
    );
    assert_eq!(raw.body.len(), 230);
    assert!(raw.body.ends_with(b"StringValue=red"));
    let auth = parse_authorization(raw.header("authorization")).unwrap();
    assert_eq!(
        auth,
        Authorization {
            access_key: "AKIDEXAMPLE".into(),
            date: "20261125".into(),
            region: "us-east-1".into(),
            service: "sqs".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: "b843a740b6c3c887f9a2a9d1cbcb149e6df8ad99f6fba46aa749291f914ea8b1".into(),
        }
    );
    assert_eq!(
        parse_authorization(capture("sns_query_publish").header("authorization"))
            .unwrap()
            .service,
        "sns"
    );
}

#[test]
fn any_changed_byte_of_the_body_is_a_mismatch() {
    for name in ["sqs_json_send", "sqs_query_send"] {
        let mut raw = capture(name);
        for i in [0, raw.body.len() / 2, raw.body.len() - 1] {
            raw.body[i] ^= 0x01;
            assert!(is_mismatch(raw.verify("secret")), "{name} byte {i}");
            raw.body[i] ^= 0x01;
        }
        raw.body.push(b' ');
        assert!(is_mismatch(raw.verify("secret")), "{name} longer");
    }
}

#[test]
fn wrong_secret_or_signature_is_a_mismatch() {
    let raw = capture("sqs_json_send");
    let err = raw.verify("Secret").unwrap_err();
    let SigV4Error::Mismatch(message) = &err else {
        panic!("{err:?}")
    };
    // What AWS says, followed by what it signed.
    assert!(message.starts_with(
        "The request signature we calculated does not match the signature you provided."
    ));
    assert!(
        message.contains("\nx-amz-target:AmazonSQS.SendMessage\n"),
        "{message}"
    );
    assert!(
        message.contains("\n20261125/us-east-1/sqs/aws4_request\n"),
        "{message}"
    );

    let headers = raw.header_refs();
    let req = raw.request(&headers);
    let good = parse_authorization(raw.header("authorization")).unwrap();
    let now = raw.signed_at();
    let mut auth = good.clone();
    auth.signature.replace_range(63.., "0");
    assert!(is_mismatch(verify(&req, &auth, "secret", now, MAX_SKEW)));
    auth.signature.truncate(62);
    assert!(is_mismatch(verify(&req, &auth, "secret", now, MAX_SKEW)));
    auth.signature = good.signature.to_ascii_uppercase();
    assert_eq!(verify(&req, &auth, "secret", now, MAX_SKEW), Ok(()));
    // What the signature covers beyond the headers and the body.
    for change in [
        |a: &mut Authorization| a.region = "us-east-2".into(),
        |a: &mut Authorization| a.service = "sns".into(),
        |a: &mut Authorization| a.signed_headers.retain(|h| h != "x-amz-target"),
    ] {
        let mut auth = good.clone();
        change(&mut auth);
        assert!(is_mismatch(verify(&req, &auth, "secret", now, MAX_SKEW)));
    }
    for (method, path, query) in [("PUT", "/", ""), ("POST", "/q", ""), ("POST", "/", "a=1")] {
        let req = Request {
            method,
            path,
            query,
            ..req
        };
        assert!(
            is_mismatch(verify(&req, &good, "secret", now, MAX_SKEW)),
            "{method} {path}?{query}"
        );
    }
    // A header that is signed must be there; one that is not may change.
    let mut raw = capture("sqs_json_send");
    raw.headers.retain(|(n, _)| n != "X-Amz-Target");
    assert!(is_mismatch(raw.verify("secret")));
    let mut raw = capture("sqs_json_send");
    raw.headers.push(("User-Agent".into(), b"another".to_vec()));
    raw.headers
        .push(("X-Forwarded-For".into(), b"10.0.0.1".to_vec()));
    assert_eq!(raw.verify("secret"), Ok(()));
    // A signed header's value is covered, repeated or not.
    let mut raw = capture("sqs_json_send");
    raw.headers
        .push(("X-Amz-Target".into(), b"AmazonSQS.DeleteQueue".to_vec()));
    assert!(is_mismatch(raw.verify("secret")));
}

#[test]
fn clock_skew_beyond_fifteen_minutes_is_expired() {
    let raw = capture("sqs_json_send"); // signed at 20261125T171309Z
    let signed = parse_basic("20261125T171309Z").unwrap();
    for delta in [-15 * 60, -60, 0, 60, 15 * 60] {
        assert_eq!(
            raw.verify_with("secret", at(signed + delta)),
            Ok(()),
            "{delta}"
        );
    }
    // AWS's messages, to the letter.
    assert_eq!(
        raw.verify_with("secret", at(parse_basic("20261125T174500Z").unwrap())),
        Err(SigV4Error::Expired(
            "Signature expired: 20261125T171309Z is now earlier than 20261125T173000Z (20261125T174500Z - 15 min.)"
                .into()
        ))
    );
    assert_eq!(
        raw.verify_with("secret", at(signed - 16 * 60)),
        Err(SigV4Error::Expired(
            "Signature not yet current: 20261125T171309Z is still later than 20261125T171209Z (20261125T165709Z + 15 min.)"
                .into()
        ))
    );
    assert!(matches!(
        raw.verify_with("secret", at(signed + 16 * 60)),
        Err(SigV4Error::Expired(_))
    ));
    // A wrong secret is still reported as expired first, as the time is cheaper to
    // check; and the skew allowed is the caller's.
    assert!(matches!(
        raw.verify_with("wrong", at(signed + 16 * 60)),
        Err(SigV4Error::Expired(_))
    ));
    let headers = raw.header_refs();
    let req = raw.request(&headers);
    let auth = parse_authorization(raw.header("authorization")).unwrap();
    assert_eq!(
        verify(&req, &auth, "secret", at(signed + 90), Duration::from_secs(30)),
        Err(SigV4Error::Expired(
            "Signature expired: 20261125T171309Z is now earlier than 20261125T171409Z (20261125T171439Z - 30 sec.)"
                .into()
        ))
    );
}

#[test]
fn request_time_comes_from_x_amz_date_or_date() {
    let mut raw = capture("sqs_query_send");
    let now = raw.signed_at();
    raw.headers.retain(|(n, _)| n != "X-Amz-Date");
    assert_eq!(raw.verify_with("secret", now), Err(SigV4Error::MissingDate));
    for garbage in [
        "",
        "yesterday",
        "20261125T171423",
        "20261325T171423Z",
        "20261125T241423Z",
    ] {
        let mut raw = capture("sqs_query_send");
        for (n, v) in &mut raw.headers {
            if n == "X-Amz-Date" {
                *v = garbage.as_bytes().to_vec();
            }
        }
        // An unreadable X-Amz-Date is not rescued by a Date header.
        raw.headers
            .push(("Date".into(), b"Wed, 25 Nov 2026 17:14:23 GMT".to_vec()));
        assert_eq!(
            raw.verify_with("secret", now),
            Err(SigV4Error::MissingDate),
            "{garbage}"
        );
    }
    // The credential scope's day must be the request's.
    let mut raw = capture("sqs_query_send");
    for (n, v) in &mut raw.headers {
        if n == "X-Amz-Date" {
            *v = b"20261126T000000Z".to_vec();
        }
    }
    let err = raw.verify_with("secret", at(parse_basic("20261126T000000Z").unwrap()));
    assert_eq!(
        err,
        Err(SigV4Error::Mismatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20261125' != '20261126', from '20261126T000000Z'."
                .into()
        ))
    );
}

#[test]
fn host_must_be_signed() {
    let raw = capture("sqs_query_send");
    let headers = raw.header_refs();
    let req = raw.request(&headers);
    let mut auth = parse_authorization(raw.header("authorization")).unwrap();
    auth.signed_headers.retain(|h| h != "host");
    assert!(is_incomplete(verify(
        &req,
        &auth,
        "secret",
        raw.signed_at(),
        MAX_SKEW
    )));
}
