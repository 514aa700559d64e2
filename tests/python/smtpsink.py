"""A tiny SMTP server for the SNS mail tests (imported as ``smtpsink``): enough of
RFC 5321 to take mail from a client (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
QUIT), keeping each message parsed with the standard ``email`` package. No
dependency beyond the standard library; ``aiosmtpd`` would do the same with an
event loop to manage.

``SmtpSink(port)`` listens on a loopback port (0 = a free one); ``close()`` stops
listening (a relay that is down) and a new ``SmtpSink`` on the same port brings it
back. ``wait()`` blocks until enough matching mails arrived."""

from __future__ import annotations

import email
import email.policy
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional


@dataclass
class Received:
    mail_from: str
    rcpt_to: List[str]
    raw: bytes
    at: float

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The body, transfer encoding undone, line breaks as ``\n``."""
        return self.message.get_content().replace("\r\n", "\n")


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class SmtpSink:
    def __init__(self, port: int = 0):
        self.mails: List[Received] = []
        self.lines: List[str] = []  # every command line, for dialogue checks
        # Data lines that break RFC 5321 (bare CR or LF, longer than 998 octets):
        # the mail is refused with 554 and the line kept here for the test to show.
        self.errors: List[bytes] = []
        self.cond = threading.Condition()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 30

            def reply(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

            def handle(self):
                self.reply("220 sink.test ESMTP ready")
                mail_from: Optional[str] = None
                rcpt: List[str] = []
                while True:
                    line = self.rfile.readline(65536)
                    if not line:
                        return
                    cmd = line.decode("ascii", "replace").rstrip("\r\n")
                    with outer.cond:
                        outer.lines.append(cmd)
                    verb = cmd[:4].upper()
                    if verb == "EHLO":
                        self.reply("250-sink.test\r\n250-8BITMIME\r\n250 SIZE 10485760")
                    elif verb == "HELO":
                        self.reply("250 sink.test")
                    elif verb == "MAIL":
                        mail_from, rcpt = cmd.split(":", 1)[1].strip().strip("<>"), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        rcpt.append(cmd.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 ok")
                    elif verb == "DATA":
                        if mail_from is None or not rcpt:
                            self.reply("503 need MAIL and RCPT first")
                            continue
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = self.read_data()
                        if data is None:
                            return
                        if isinstance(data, tuple):
                            with outer.cond:
                                outer.errors.append(data[0])
                            self.reply("554 malformed data line")
                            continue
                        with outer.cond:
                            outer.mails.append(Received(mail_from, rcpt, data, time.monotonic()))
                            outer.cond.notify_all()
                        mail_from, rcpt = None, []
                        self.reply("250 queued")
                    elif verb == "RSET":
                        mail_from, rcpt = None, []
                        self.reply("250 ok")
                    elif verb == "NOOP":
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("500 unknown command")

            def read_data(self):
                """The message (dot-stuffing undone), ``(bad_line,)`` if a line
                breaks the rules, ``None`` if the client went away."""
                out, bad = [], None
                while True:
                    line = self.rfile.readline(65536)
                    if not line:
                        return None
                    if line == b".\r\n":
                        return (bad,) if bad is not None else b"".join(out)
                    ok = (line.endswith(b"\r\n") and b"\r" not in line[:-2]
                          and b"\n" not in line[:-1] and len(line) <= 1000)
                    if not ok and bad is None:
                        bad = line[:200]
                    out.append(line[1:] if line.startswith(b".") else line)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.relay = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred: Callable[[Received], bool] = lambda m: True, timeout: float = 30.0,
             count: int = 1) -> List[Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [m for m in self.mails if pred(m)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.rcpt_to, m.subject) for m in self.mails]
                    raise AssertionError(f"wanted {count} matching mails, got {len(got)}: {seen}")
                self.cond.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
