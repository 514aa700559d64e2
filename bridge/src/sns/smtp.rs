//! A small SMTP client (RFC 5321) for `email` and `email-json` deliveries through
//! the relay named in `sns.smtp_relay`: EHLO (HELO if refused), MAIL FROM, RCPT TO,
//! DATA, QUIT — one message per connection, no authentication, no STARTTLS. The
//! relay does the real delivery, queueing and retrying towards the recipient's MX;
//! SNS only needs it to accept the message (a 250 after the data), which is what
//! settles a delivery.
//!
//! Our own rather than `lettre`: the dialogue is a few dozen lines, and owning it
//! keeps every step bounded (reply lines, reply length, time per step and per
//! message), which a general mail crate would leave to its defaults.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Time to get a TCP connection to the relay.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the relay has for each reply. RFC 5321 suggests minutes; a relay on the
/// same network that takes this long is as good as down, and the delivery's lease
/// (30 s) must outlast the whole transaction.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// The whole transaction, connection included: under the delivery lease, so a
/// message is never sent twice at once because its lease ran out mid-send.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(25);
/// Longest reply line read (RFC 5321 allows 512 octets; some relays say more).
const MAX_LINE: usize = 4096;
/// Most lines one reply may have (an EHLO reply lists a line per extension).
const MAX_REPLY_LINES: usize = 64;
/// Messages being sent at once, all subscriptions together.
const MAX_IN_FLIGHT: usize = 16;
/// Longest address accepted (RFC 5321's path limit).
const MAX_ADDRESS: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("no SMTP relay is configured (sns.smtp_relay)")]
    NoRelay,
    #[error("cannot connect to the SMTP relay {relay}: {reason}")]
    Connect { relay: String, reason: String },
    #[error("SMTP relay gave no answer to {step} within {}s", .limit.as_secs())]
    Timeout { step: &'static str, limit: Duration },
    #[error("SMTP relay connection failed during {step}: {source}")]
    Io {
        step: &'static str,
        source: std::io::Error,
    },
    #[error("SMTP relay closed the connection during {0}")]
    Closed(&'static str),
    #[error("SMTP relay sent a malformed reply to {step}: {line:?}")]
    Malformed { step: &'static str, line: String },
    #[error("SMTP relay's reply to {0} is too long")]
    TooLong(&'static str),
    #[error("SMTP relay refused {step}: {code} {text}")]
    Refused {
        step: &'static str,
        code: u16,
        text: String,
    },
    #[error("{0:?} is not an address SNS sends mail to or from")]
    BadAddress(String),
}

/// One message for one recipient.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope sender (MAIL FROM), a bare address.
    pub from: String,
    /// The envelope recipient (RCPT TO), a bare address.
    pub to: String,
    /// The whole RFC 5322 message, headers and body; lines end in CRLF. Not
    /// dot-stuffed: [`Session`] does that on the way out.
    pub data: Vec<u8>,
}

/// Whether `addr` can stand in `<...>` of MAIL FROM / RCPT TO and in a To header:
/// `local@domain`, printable ASCII, nothing that would end the path or the line.
pub fn valid_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    addr.len() <= MAX_ADDRESS
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && addr
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b',' | b'"' | b'\\'))
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

/// Sends mail through one relay; cheap to share.
#[derive(Clone)]
pub struct SmtpClient {
    relay: String,
    /// The name the client gives in EHLO: the sender address's domain.
    helo: String,
    slots: Arc<Semaphore>,
}

impl SmtpClient {
    pub fn new(relay: &str, from: &str) -> SmtpClient {
        let helo = from
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
            .to_string();
        SmtpClient {
            relay: relay.to_string(),
            helo,
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Sends `mail`; `Ok` once the relay has accepted it (250 after the data).
    pub async fn send(&self, mail: &Mail) -> Result<(), SmtpError> {
        for a in [&mail.from, &mail.to] {
            if !valid_address(a) {
                return Err(SmtpError::BadAddress(a.clone()));
            }
        }
        // Closed only when the client is dropped, which never happens while it runs.
        let _slot = self.slots.acquire().await.map_err(|_| SmtpError::NoRelay)?;
        let transaction = async {
            let stream = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                TcpStream::connect(self.relay.as_str()),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return Err(SmtpError::Connect {
                        relay: self.relay.clone(),
                        reason: e.to_string(),
                    });
                }
                Err(_) => {
                    return Err(SmtpError::Connect {
                        relay: self.relay.clone(),
                        reason: format!("no connection within {}s", CONNECT_TIMEOUT.as_secs()),
                    });
                }
            };
            let _ = stream.set_nodelay(true);
            Session::new(stream, STEP_TIMEOUT)
                .send(&self.helo, mail)
                .await
        };
        match tokio::time::timeout(TOTAL_TIMEOUT, transaction).await {
            Ok(r) => r,
            Err(_) => Err(SmtpError::Timeout {
                step: "the whole transaction",
                limit: TOTAL_TIMEOUT,
            }),
        }
    }
}

/// A relay's reply: its code and the text of its lines.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" / ")
    }
}

/// One SMTP conversation over any byte stream (a TCP connection, or a scripted
/// fake in the tests).
struct Session<S> {
    io: BufReader<S>,
    step_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S, step_timeout: Duration) -> Self {
        Session {
            io: BufReader::new(stream),
            step_timeout,
        }
    }

    /// The whole dialogue for one message.
    async fn send(&mut self, helo: &str, mail: &Mail) -> Result<(), SmtpError> {
        self.expect("the greeting", |c| c == 220).await?;
        let ehlo = self.command("EHLO", &format!("EHLO {helo}")).await?;
        // A server that predates ESMTP refuses EHLO (RFC 5321 4.1.4): fall back.
        if ehlo.code != 250 {
            if (500..600).contains(&ehlo.code) {
                self.command_ok("HELO", &format!("HELO {helo}"), |c| c == 250)
                    .await?;
            } else {
                return Err(refused("EHLO", ehlo));
            }
        }
        self.command_ok("MAIL FROM", &format!("MAIL FROM:<{}>", mail.from), |c| {
            c == 250
        })
        .await?;
        // 251: "user not local; will forward", still accepted.
        self.command_ok("RCPT TO", &format!("RCPT TO:<{}>", mail.to), |c| {
            c == 250 || c == 251
        })
        .await?;
        self.command_ok("DATA", "DATA", |c| c == 354).await?;
        let body = dot_stuff(&mail.data);
        self.write("the message data", &body).await?;
        self.expect("the message data", |c| c == 250).await?;
        // The message is accepted; a relay that answers QUIT badly changes nothing.
        if self.write("QUIT", b"QUIT\r\n").await.is_ok() {
            let _ = self.reply("QUIT").await;
        }
        Ok(())
    }

    async fn write(&mut self, step: &'static str, bytes: &[u8]) -> Result<(), SmtpError> {
        let io = self.io.get_mut();
        let w = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        match tokio::time::timeout(self.step_timeout, w).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(SmtpError::Io { step, source }),
            Err(_) => Err(SmtpError::Timeout {
                step,
                limit: self.step_timeout,
            }),
        }
    }

    /// Sends one command line and reads the reply, whatever its code.
    async fn command(&mut self, step: &'static str, line: &str) -> Result<Reply, SmtpError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(step, &bytes).await?;
        self.reply(step).await
    }

    async fn command_ok(
        &mut self,
        step: &'static str,
        line: &str,
        ok: impl Fn(u16) -> bool,
    ) -> Result<Reply, SmtpError> {
        let r = self.command(step, line).await?;
        if ok(r.code) {
            Ok(r)
        } else {
            Err(refused(step, r))
        }
    }

    async fn expect(
        &mut self,
        step: &'static str,
        ok: impl Fn(u16) -> bool,
    ) -> Result<Reply, SmtpError> {
        let r = self.reply(step).await?;
        if ok(r.code) {
            Ok(r)
        } else {
            Err(refused(step, r))
        }
    }

    /// Reads one reply, all its lines (`250-...` continues, `250 ...` ends it).
    async fn reply(&mut self, step: &'static str) -> Result<Reply, SmtpError> {
        let limit = self.step_timeout;
        match tokio::time::timeout(limit, self.read_reply(step)).await {
            Ok(r) => r,
            Err(_) => Err(SmtpError::Timeout { step, limit }),
        }
    }

    async fn read_reply(&mut self, step: &'static str) -> Result<Reply, SmtpError> {
        let mut code = None;
        let mut lines = Vec::new();
        let mut buf = Vec::with_capacity(128);
        loop {
            if lines.len() == MAX_REPLY_LINES {
                return Err(SmtpError::TooLong(step));
            }
            buf.clear();
            // `take` bounds what one line may make us hold.
            let n = (&mut self.io)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|source| SmtpError::Io { step, source })?;
            if n == 0 {
                return Err(SmtpError::Closed(step));
            }
            if buf.last() != Some(&b'\n') {
                return Err(SmtpError::TooLong(step));
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\r', '\n']);
            let (c, last, text) = parse_line(line).ok_or_else(|| SmtpError::Malformed {
                step,
                line: line.chars().take(80).collect(),
            })?;
            if code.is_some_and(|k| k != c) {
                return Err(SmtpError::Malformed {
                    step,
                    line: line.chars().take(80).collect(),
                });
            }
            code = Some(c);
            lines.push(text.to_string());
            if last {
                return Ok(Reply { code: c, lines });
            }
        }
    }
}

fn refused(step: &'static str, r: Reply) -> SmtpError {
    SmtpError::Refused {
        step,
        code: r.code,
        text: r.text(),
    }
}

/// `250-text` → (250, false, "text"); `250 text` or `250` → (250, true, ...).
fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&b[0]) {
        return None;
    }
    let code = line[..3].parse().ok()?;
    match b.get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// The DATA section for `data`: every line break made CRLF (SMTP forbids bare CR
/// and LF), a `.` doubled at the start of a line so no line of the message reads
/// as the end marker (RFC 5321 4.5.2), and the end marker itself.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 8);
    let mut at_line_start = true;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match b {
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                // CRLF is one break, not two.
                if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            _ => {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

    /// A scripted relay: for each step, the line it expects from the client (a
    /// prefix; `None` for the greeting) and what it answers. After DATA's 354 it
    /// reads the message up to the end marker and keeps it.
    async fn fake_relay(
        stream: DuplexStream,
        script: Vec<(Option<&'static str>, &'static str)>,
    ) -> (Vec<String>, Vec<u8>) {
        let mut io = BufReader::new(stream);
        let mut seen = Vec::new();
        let mut data = Vec::new();
        let mut in_data = false;
        for (want, answer) in script {
            if in_data {
                loop {
                    let mut line = Vec::new();
                    if io.read_until(b'\n', &mut line).await.unwrap() == 0 {
                        return (seen, data);
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    data.extend_from_slice(&line);
                }
                in_data = false;
            } else if let Some(want) = want {
                let mut line = String::new();
                if io.read_line(&mut line).await.unwrap() == 0 {
                    return (seen, data);
                }
                assert!(line.starts_with(want), "expected {want:?}, got {line:?}");
                assert!(line.ends_with("\r\n"));
                seen.push(line.trim_end().to_string());
                in_data = want == "DATA" && answer.starts_with("354");
            }
            io.get_mut().write_all(answer.as_bytes()).await.unwrap();
        }
        (seen, data)
    }

    fn mail() -> Mail {
        Mail {
            from: "no-reply@sns.test".into(),
            to: "someone@example.com".into(),
            data: b"Subject: hi\r\n\r\n.starts with a dot\r\nok\r\n".to_vec(),
        }
    }

    async fn run(
        script: Vec<(Option<&'static str>, &'static str)>,
    ) -> (Result<(), SmtpError>, Vec<String>, Vec<u8>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(fake_relay(server, script));
        let r = Session::new(client, Duration::from_millis(500))
            .send("sns.test", &mail())
            .await;
        let (seen, data) = relay.await.unwrap();
        (r, seen, data)
    }

    #[tokio::test]
    async fn full_dialogue_with_multiline_ehlo() {
        let (r, seen, data) = run(vec![
            (None, "220 relay ESMTP ready\r\n"),
            (
                Some("EHLO"),
                "250-relay hello\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n",
            ),
            (Some("MAIL FROM"), "250 ok\r\n"),
            (Some("RCPT TO"), "250 ok\r\n"),
            (Some("DATA"), "354 go ahead\r\n"),
            (None, "250 queued as 1\r\n"),
            (Some("QUIT"), "221 bye\r\n"),
        ])
        .await;
        r.unwrap();
        assert_eq!(
            seen,
            [
                "EHLO sns.test",
                "MAIL FROM:<no-reply@sns.test>",
                "RCPT TO:<someone@example.com>",
                "DATA",
                "QUIT"
            ]
        );
        assert_eq!(data, b"Subject: hi\r\n\r\n..starts with a dot\r\nok\r\n");
    }

    #[tokio::test]
    async fn helo_when_ehlo_is_refused() {
        let (r, seen, _) = run(vec![
            (None, "220 old relay\r\n"),
            (Some("EHLO"), "502 command not implemented\r\n"),
            (Some("HELO"), "250 hello\r\n"),
            (Some("MAIL FROM"), "250 ok\r\n"),
            (Some("RCPT TO"), "251 will forward\r\n"),
            (Some("DATA"), "354 go ahead\r\n"),
            (None, "250 ok\r\n"),
            // The relay hangs up instead of answering QUIT: still delivered.
        ])
        .await;
        r.unwrap();
        assert_eq!(seen[1], "HELO sns.test");
    }

    #[tokio::test]
    async fn refusals_name_the_step_and_code() {
        let (r, _, _) = run(vec![
            (None, "220 ready\r\n"),
            (Some("EHLO"), "250 hi\r\n"),
            (Some("MAIL FROM"), "250 ok\r\n"),
            (Some("RCPT TO"), "550-no such user\r\n550 really\r\n"),
        ])
        .await;
        let e = r.unwrap_err();
        assert!(
            matches!(&e, SmtpError::Refused { step: "RCPT TO", code: 550, text } if text == "no such user / really"),
            "{e:?}"
        );
        let (r, _, _) = run(vec![(None, "421 busy, later\r\n")]).await;
        let e = r.unwrap_err();
        assert!(matches!(e, SmtpError::Refused { code: 421, .. }), "{e:?}");
        // Accepted up to the data, then refused: not delivered.
        let (r, _, _) = run(vec![
            (None, "220 ready\r\n"),
            (Some("EHLO"), "250 hi\r\n"),
            (Some("MAIL FROM"), "250 ok\r\n"),
            (Some("RCPT TO"), "250 ok\r\n"),
            (Some("DATA"), "354 go\r\n"),
            (None, "452 no space\r\n"),
        ])
        .await;
        assert!(matches!(
            r.unwrap_err(),
            SmtpError::Refused {
                step: "the message data",
                code: 452,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn bad_replies_and_silence_are_errors() {
        let (r, _, _) = run(vec![(None, "hello there\r\n")]).await;
        assert!(matches!(r.unwrap_err(), SmtpError::Malformed { .. }));
        let (r, _, _) = run(vec![(None, "220-one\r\n221 two\r\n")]).await;
        assert!(matches!(r.unwrap_err(), SmtpError::Malformed { .. }));
        let (r, _, _) = run(vec![]).await;
        assert!(matches!(r.unwrap_err(), SmtpError::Closed("the greeting")));
        // A relay that accepts the connection and says nothing.
        let (client, _server) = tokio::io::duplex(1024);
        let r = Session::new(client, Duration::from_millis(50))
            .send("h", &mail())
            .await;
        assert!(matches!(r.unwrap_err(), SmtpError::Timeout { .. }));
        // An endless line is cut off, not buffered.
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let w = tokio::spawn(async move {
            let _ = server.write_all(&[b'2'; MAX_LINE + 10]).await;
            server
        });
        let r = Session::new(client, Duration::from_millis(500))
            .send("h", &mail())
            .await;
        assert!(matches!(r.unwrap_err(), SmtpError::TooLong(_)));
        drop(w.await);
    }

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"..x"), b"...x\r\n.\r\n");
        assert_eq!(
            dot_stuff(b"a.b\r\n"),
            b"a.b\r\n.\r\n",
            "only at a line's start"
        );
        assert_eq!(dot_stuff(b"a\n.b\rc"), b"a\r\n..b\r\nc\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"x\r\n\r\n"), b"x\r\n\r\n.\r\n");
    }

    #[test]
    fn reply_lines_parse() {
        assert_eq!(parse_line("250 ok"), Some((250, true, "ok")));
        assert_eq!(parse_line("250-SIZE 10"), Some((250, false, "SIZE 10")));
        assert_eq!(parse_line("250"), Some((250, true, "")));
        assert_eq!(parse_line("25"), None);
        assert_eq!(parse_line("abc ok"), None);
        assert_eq!(parse_line("650 ok"), None);
        assert_eq!(parse_line("250x"), None);
    }

    #[test]
    fn addresses() {
        assert!(valid_address("a@example.com"));
        assert!(valid_address("first.last+tag@sub.example.org"));
        assert!(!valid_address("no-at-sign"));
        assert!(!valid_address("@example.com"));
        assert!(!valid_address("a@"));
        assert!(!valid_address("a b@example.com"));
        assert!(!valid_address("a@example.com>\r\nRCPT TO:<b@x"));
        assert!(!valid_address("a@exa_mple.com"));
        assert!(!valid_address(&format!("{}@example.com", "a".repeat(300))));
    }
}
