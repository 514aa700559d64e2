//! The RFC 5322 messages SNS mails: headers, and a text/plain UTF-8 body in
//! quoted-printable, so that any message — non-ASCII text, or an email-json
//! envelope that is one long line — goes through a relay that offers neither
//! 8BITMIME nor lines longer than 998 octets. Pure functions, so the tests can
//! check the exact bytes.

use crate::sigv4::format_iso_ms;

/// What one mail says; [`render`] makes the message of it.
pub struct Letter<'a> {
    /// Shown as the sender's name (the topic's DisplayName, as AWS does).
    pub from_name: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    /// Makes the Message-ID (the SNS message id, so a mail can be matched to it).
    pub id: &'a str,
    pub date_ms: i64,
    pub body: &'a str,
}

/// The whole message: headers, a blank line, the encoded body. CRLF throughout.
pub fn render(l: &Letter) -> Vec<u8> {
    let domain = l.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mut h = String::new();
    let mut header = |name: &str, value: &str| {
        h.push_str(name);
        h.push_str(": ");
        h.push_str(value);
        h.push_str("\r\n");
    };
    header("Date", &rfc5322_date(l.date_ms));
    header(
        "From",
        &format!("{} <{}>", display_name(l.from_name), l.from),
    );
    header("To", &format!("<{}>", l.to));
    header("Subject", &encode_header(l.subject));
    header("Message-ID", &format!("<{}@{domain}>", sanitize(l.id)));
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=UTF-8");
    header("Content-Transfer-Encoding", "quoted-printable");
    let mut out = h.into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(quoted_printable(l.body).as_bytes());
    out
}

/// Header text without line breaks or other controls: they would start a header
/// of the caller's choosing.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A header value as it can travel: ASCII as it is, anything else as an RFC 2047
/// encoded word (base64 UTF-8), split so no encoded word passes 75 characters.
fn encode_header(s: &str) -> String {
    let s = sanitize(s);
    if s.is_ascii() {
        return s;
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut words = Vec::new();
    let mut chunk = String::new();
    // 45 bytes of UTF-8 make 60 of base64: with `=?UTF-8?B?` and `?=`, 72.
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", b64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", b64.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// The From display name: a quoted string, or an encoded word if not ASCII.
fn display_name(name: &str) -> String {
    let name = sanitize(name);
    if !name.is_ascii() {
        return encode_header(&name);
    }
    let escaped: String = name
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// `Tue, 07 Jan 2025 09:05:03 +0000`.
pub fn rfc5322_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`, so the calendar arithmetic lives in one place.
    let iso = format_iso_ms(ms);
    let field = |r: std::ops::Range<usize>| iso.get(r).unwrap_or("0");
    let month = field(5..7).parse::<usize>().unwrap_or(1).clamp(1, 12);
    // 1970-01-01 was a Thursday.
    let weekday = ms.div_euclid(86_400_000).rem_euclid(7) as usize;
    format!(
        "{}, {} {} {} {} +0000",
        DAYS[weekday],
        field(8..10),
        MONTHS[month - 1],
        field(0..4),
        field(11..19)
    )
}

/// Longest encoded line (RFC 2045), soft break included.
const QP_LINE: usize = 76;

/// Quoted-printable (RFC 2045 6.7) of UTF-8 text: line breaks become CRLF; `=`,
/// controls, non-ASCII bytes and a space or tab before a break are `=XX`; lines
/// longer than 76 are broken softly (`=` at the end); a `.` starting a line is
/// encoded too, so the body never depends on the relay's dot handling.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for (i, line) in normalized.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut col = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal = |col: usize| match b {
                b'=' => false,
                b' ' | b'\t' => !last,
                b'.' => col != 0,
                33..=126 => true,
                _ => false,
            };
            let width = |lit: bool| if lit { 1 } else { 3 };
            // Room for this and, unless it ends the line, the soft break's `=`.
            let room = if last { QP_LINE } else { QP_LINE - 1 };
            let mut lit = literal(col);
            if col + width(lit) > room {
                out.push_str("=\r\n");
                col = 0;
                lit = literal(col);
            }
            if lit {
                out.push(b as char);
            } else if b == b'.' {
                out.push_str("=2E");
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            col += width(lit);
        }
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reverse of [`quoted_printable`], as a mail reader does it.
    fn decode(qp: &str) -> String {
        let joined = qp.replace("=\r\n", "");
        let b = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap().replace("\r\n", "\n")
    }

    #[test]
    fn quoted_printable_round_trips_and_keeps_lines_short() {
        let long = format!("{{\"Message\":\"{}\"}}", "x= ".repeat(200));
        for text in [
            "plain",
            "héllo wörld ✓",
            "trailing space \nnext",
            ".dot\n..two",
            long.as_str(),
            "tab\tinside",
        ] {
            let qp = quoted_printable(text);
            assert!(qp.lines().all(|l| l.len() <= QP_LINE), "{qp}");
            assert!(qp.is_ascii());
            assert!(!qp.lines().any(|l| l.starts_with('.')), "{qp}");
            assert_eq!(decode(&qp), format!("{text}\n"));
        }
        assert_eq!(quoted_printable("a=b"), "a=3Db\r\n");
        assert_eq!(quoted_printable("end "), "end=20\r\n");
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2025-01-07T09:05:03Z
        assert_eq!(
            rfc5322_date(1_736_240_703_000),
            "Tue, 07 Jan 2025 09:05:03 +0000"
        );
    }

    #[test]
    fn headers_are_encoded_and_cannot_be_injected() {
        let m = render(&Letter {
            from_name: "My \"Topic\"",
            from: "no-reply@sns.test",
            to: "a@example.com",
            subject: "ünïcode subject\r\nBcc: evil@example.com",
            id: "abc",
            date_ms: 0,
            body: "hi",
        });
        let m = String::from_utf8(m).unwrap();
        assert!(m.contains("From: \"My \\\"Topic\\\"\" <no-reply@sns.test>\r\n"));
        assert!(m.contains("To: <a@example.com>\r\n"));
        assert!(m.contains("Subject: =?UTF-8?B?"));
        assert!(!m.contains("\r\nBcc"));
        assert!(m.contains("Message-ID: <abc@sns.test>\r\n"));
        assert!(m.ends_with("\r\n\r\nhi\r\n"));
        assert!(m.is_ascii());
        assert_eq!(encode_header("plain"), "plain");
    }
}
