//! Why bytes are not a STOMP frame. Both the decoder (`codec.rs`) and header
//! unescaping (`frame.rs`) report it, so it sits below both.

use crate::version::Version;

/// Why the bytes are not a STOMP frame. The `Display` text is meant for the
/// `message` header of the ERROR frame; client bytes in it are quoted with Rust
/// escapes and cut at 40 characters.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unknown command \"{0}\"")]
    UnknownCommand(String),
    #[error("header line \"{0}\" has no ':' between name and value")]
    HeaderWithoutColon(String),
    #[error("frame headers exceed the limit of {max} bytes")]
    HeadersTooLong { max: usize },
    #[error("frame has more than {max} headers")]
    TooManyHeaders { max: usize },
    #[error("frame body exceeds the limit of {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("content-length \"{0}\" is not a number")]
    ContentLengthNotANumber(String),
    #[error("content-length {length} exceeds the limit of {max} bytes")]
    ContentLengthTooLarge { length: String, max: usize },
    #[error("frame not terminated by a NUL byte after its content-length of {0} bytes")]
    NotTerminated(usize),
    #[error(
        "invalid escape sequence \"{sequence}\" in header line \"{line}\" (STOMP {version} allows {allowed})",
        allowed = allowed_escapes(*.version)
    )]
    InvalidEscape {
        sequence: String,
        line: String,
        version: Version,
    },
    #[error("carriage return not followed by line feed in \"{0}\" (escape it as \\r, STOMP 1.2)")]
    BareCarriageReturn(String),
    #[error("header line \"{0}\" is not valid UTF-8")]
    InvalidUtf8(String),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

fn allowed_escapes(v: Version) -> &'static str {
    match v {
        Version::V12 => "only \\r, \\n, \\c and \\\\",
        _ => "only \\n, \\c and \\\\",
    }
}

/// Client bytes quoted for an error message: lossy UTF-8, Rust escapes, 40 chars.
pub(crate) fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in String::from_utf8_lossy(bytes).chars().enumerate() {
        if i == 40 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}
