//! Pieces of the AWS Query protocol that SQS and SNS share: decoding form bodies and
//! escaping XML text. Each service keeps its own tables, replies and error codes.

use crate::percent::percent_decode;

/// A form that cannot be read; each service answers it with its own error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

/// Decodes `application/x-www-form-urlencoded` bytes into pairs, in order.
///
/// Not `form_urlencoded::parse`: that replaces bytes that are not UTF-8 with U+FFFD,
/// which SQS accepts as message text, so a broken client would have its message body
/// silently altered instead of refused.
pub fn decode_form(form: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs = Vec::new();
    for pair in form.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let name = form_text(name)
            .ok_or_else(|| FormError("A parameter name is not valid UTF-8.".into()))?;
        let value = form_text(value).ok_or_else(|| {
            FormError(format!(
                "Value for parameter {name} is invalid. Reason: it is not valid UTF-8."
            ))
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// A form field as text: Query parameters are UTF-8, and bytes that are not are
/// refused rather than replaced.
fn form_text(raw: &[u8]) -> Option<String> {
    String::from_utf8(percent_decode(raw, true)).ok()
}

/// Appends `text` as XML character data that a parser gives back unchanged: CR is
/// written as `&#xD;` because XML parsers turn a literal CR (or CR LF) into LF, as AWS
/// does for message bodies. Characters XML 1.0 cannot carry at all, even as references
/// (most C0 controls, U+FFFE, U+FFFF), become U+FFFD rather than make the whole reply
/// unreadable. SQS refuses them in messages, so only data from elsewhere can hold them.
pub fn push_text(x: &mut String, text: &str) {
    let mut done = 0;
    for (at, c) in text.char_indices() {
        let escaped = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            // Only needed after `]]`; escaping every one is simpler and as valid.
            '>' => "&gt;",
            '\r' => "&#xD;",
            '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => {
                continue;
            }
            _ => "\u{FFFD}",
        };
        x.push_str(&text[done..at]);
        x.push_str(escaped);
        done = at + c.len_utf8();
    }
    x.push_str(&text[done..]);
}
