//! Percent-decoding, shared by the SigV4 canonical query and the Query protocol's
//! form bodies so that both read `%XX` the same way.

/// Decodes `%XX` (either case) to bytes. A `%` not followed by two hex digits stands
/// for itself, as browsers and `form_urlencoded` have it. `plus_is_space` is for form
/// bodies, where `+` is a space; in a URL's query string a `+` is itself.
pub(crate) fn percent_decode(raw: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => match (hex_value(raw.get(i + 1)), hex_value(raw.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Encodes for a URL's query string: everything but RFC 3986's unreserved
/// characters and `:` (kept so that ARNs in SNS's SubscribeURL read as AWS's do).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex_value(b: Option<&u8>) -> Option<u8> {
    char::from(*b?)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::{encode, percent_decode};

    #[test]
    fn encoding_round_trips() {
        let s = "arn:aws:sns:us-east-1:0:t&x=y z/%";
        assert_eq!(encode(s), "arn:aws:sns:us-east-1:0:t%26x%3Dy%20z%2F%25");
        assert_eq!(percent_decode(encode(s).as_bytes(), false), s.as_bytes());
    }

    #[test]
    fn plus_is_a_space_only_in_forms() {
        assert_eq!(percent_decode(b"a+b%2B", true), b"a b+");
        assert_eq!(percent_decode(b"a+b%2B", false), b"a+b+");
    }

    #[test]
    fn a_stray_percent_stands_for_itself() {
        assert_eq!(percent_decode(b"%zz%4%", false), b"%zz%4%");
        assert_eq!(percent_decode(b"%+1", true), b"% 1");
        assert_eq!(percent_decode(b"%c3%A9", false), "é".as_bytes());
    }
}
