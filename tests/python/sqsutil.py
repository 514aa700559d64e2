"""Amazon SQS helpers for the end-to-end suite (imported as ``sqsutil``).

* ``Endpoint``: where the SQS HTTP listener is (Switchboard's ``http=`` listener, or
  ``SWITCHBOARD_SQS_URL``, e.g. a reference ``moto_server``) and which credentials,
  region and so on to use.
* ``client``: a boto3 SQS client (AWS JSON 1.0 protocol, botocore's default) with no
  hidden retries.
* ``QueryClient``: a minimal client for the AWS Query protocol (form bodies, XML
  answers), signed with botocore's ``SigV4Auth``.
* ``raw_request`` / ``json_request``: one HTTP request, signed (optionally with a
  wrong secret or a skewed clock) or not, for the authentication tests.
* ``md5_of_message_attributes``: an independent implementation of AWS's digest of
  message attributes (botocore does not check MD5s; the SDK for Java does).
* ``Sqs``: what the ``sqs`` fixture hands a test: the endpoint, a client, and
  ``queue()`` which creates uniquely named queues and deletes them at teardown.
* ``aws_cli``: runs ``aws ... sqs ...`` (awscli v1 from PyPI) isolated from the
  developer's own ``~/.aws``.

Queue names are ``pytest-<kind>-<hex>`` (SQS names allow only ``[A-Za-z0-9_-]``).
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

SQS_URL = os.environ.get("SWITCHBOARD_SQS_URL")

API_VERSION = "2012-11-05"
XML_NS = "http://queue.amazonaws.com/doc/2012-11-05/"
REGION = "us-east-1"
# Switchboard's (fixed) account id; the reference server uses another one, so tests
# read the account from the QueueUrl that CreateQueue returns.
SWITCHBOARD_ACCOUNT = "000000000000"
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"

# AWS's documented defaults and limits (SQS API reference, CreateQueue / SendMessage).
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_MAXIMUM_MESSAGE_SIZE = 1_048_576  # raised from 262,144 in August 2025
DEFAULT_RETENTION = 345_600
MAX_VISIBILITY_TIMEOUT = 43_200


def is_sqs_external() -> bool:
    """True when the SQS tests run against an external server (e.g. moto_server)."""
    return bool(SQS_URL)


def requires_switchboard_sqs(reason: str):
    """Skip a test when SWITCHBOARD_SQS_URL points at a reference server; ``reason``
    says why that server cannot pass it (where it deviates from AWS)."""
    return pytest.mark.skipif(is_sqs_external(), reason=reason)


def uid() -> str:
    return uuid.uuid4().hex[:12]


def qname(kind: str = "q", fifo: bool = False) -> str:
    """A unique queue name, e.g. ``pytest-q-0123456789ab`` (``.fifo`` appended)."""
    return f"pytest-{kind}-{uid()}" + (".fifo" if fifo else "")


# ---------------------------------------------------------------------------------
# Endpoints


@dataclass
class Endpoint:
    url: str  # scheme://host:port, no trailing slash
    access_key: str = "guest"
    secret_key: str = "guest"
    region: str = REGION
    external: bool = False
    name: str = "switchboard"

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.url).port or 80

    @property
    def netloc(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc


def endpoint_from_env() -> Optional[Endpoint]:
    if not SQS_URL:
        return None
    u = urllib.parse.urlsplit(SQS_URL)
    return Endpoint(url=f"{u.scheme or 'http'}://{u.netloc}", external=True, name="external",
                    access_key=u.username or "guest", secret_key=u.password or "guest")


def endpoint_from_ports(ports: Dict[str, Tuple[str, int]]) -> Endpoint:
    if "http" not in ports:
        pytest.fail(f"Switchboard's listening line has no http (SQS) listener: {ports}",
                    pytrace=False)
    host, port = ports["http"]
    if ":" in host:
        host = f"[{host}]"
    return Endpoint(url=f"http://{host}:{port}")


# ---------------------------------------------------------------------------------
# boto3


def client(ep: Endpoint, access_key: Optional[str] = None, secret_key: Optional[str] = None,
           endpoint_url: Optional[str] = None, **config):
    """A boto3 SQS client for ``ep``: one attempt per call (no retries that would hide
    errors or double a send), a read timeout above the 20 s long-poll maximum."""
    cfg = botocore.config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5, read_timeout=40, **config)
    session = boto3.session.Session()
    return session.client(
        "sqs", endpoint_url=endpoint_url or ep.url, region_name=ep.region,
        aws_access_key_id=access_key or ep.access_key,
        aws_secret_access_key=secret_key or ep.secret_key, config=cfg)


def account_of(queue_url: str) -> str:
    """The account id in ``scheme://host/ACCOUNT/name`` (or, for a queue of another
    region than Switchboard's default, ``scheme://host/queue/REGION/ACCOUNT/name``)."""
    return urllib.parse.urlsplit(queue_url).path.strip("/").split("/")[-2]


def name_of(queue_url: str) -> str:
    return urllib.parse.urlsplit(queue_url).path.rstrip("/").split("/")[-1]


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def http_status(e_or_resp: Union[ClientError, Mapping]) -> int:
    r = e_or_resp.response if isinstance(e_or_resp, ClientError) else e_or_resp
    return r.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


def query_error_header(e: ClientError) -> Optional[str]:
    return e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amzn-query-error")


def expect_error(code: Union[str, Sequence[str]], fn: Callable, *args, status: Optional[int] = None,
                 **kwargs) -> ClientError:
    """Call ``fn`` and assert it raises a ClientError whose code is ``code`` (or one of
    them); return the error."""
    codes = (code,) if isinstance(code, str) else tuple(code)
    with pytest.raises(ClientError) as ei:
        fn(*args, **kwargs)
    e = ei.value
    assert error_code(e) in codes, (
        f"expected error {' or '.join(codes)}, got {error_code(e)!r}: {e.response.get('Error')}")
    if status is not None:
        assert http_status(e) == status, e.response
    return e


# ---------------------------------------------------------------------------------
# MD5 digests (SQS Developer Guide, "Calculating the MD5 message digest for message
# attributes"): sort the attributes by name; for each, the 4-byte big-endian length
# and UTF-8 bytes of the name, the same of the data type, one transport byte (1 for
# String and Number, 2 for Binary), then the length and bytes of the value (UTF-8 of
# StringValue, or the raw BinaryValue).


def md5_hex(data: Union[str, bytes]) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.md5(data).hexdigest()


def md5_of_message_attributes(attrs: Mapping[str, Mapping[str, Any]]) -> str:
    h = hashlib.md5()

    def length_and_bytes(b: bytes) -> None:
        h.update(struct.pack(">I", len(b)))
        h.update(b)

    for name in sorted(attrs):
        a = attrs[name]
        data_type = a["DataType"]
        length_and_bytes(name.encode("utf-8"))
        length_and_bytes(data_type.encode("utf-8"))
        if data_type.split(".", 1)[0] == "Binary":
            h.update(b"\x02")
            v = a["BinaryValue"]
            length_and_bytes(v if isinstance(v, bytes) else bytes(v))
        else:
            h.update(b"\x01")
            length_and_bytes(a["StringValue"].encode("utf-8"))
    return h.hexdigest()


def check_md5s(msg: Mapping[str, Any]) -> None:
    """Assert a received message's MD5OfBody (and MD5OfMessageAttributes, present iff
    attributes were returned) match its body and attributes."""
    assert msg["MD5OfBody"] == md5_hex(msg["Body"]), msg
    if msg.get("MessageAttributes"):
        assert msg["MD5OfMessageAttributes"] == md5_of_message_attributes(msg["MessageAttributes"]), msg
    else:
        assert "MD5OfMessageAttributes" not in msg, msg


# ---------------------------------------------------------------------------------
# Receiving


def receive(c, url: str, n: int = 10, wait: int = 0, **kw) -> List[dict]:
    """One ReceiveMessage call; the list of messages (empty when none)."""
    return c.receive_message(QueueUrl=url, MaxNumberOfMessages=n, WaitTimeSeconds=wait,
                             **kw).get("Messages", [])


def receive_n(c, url: str, count: int, timeout: float = 5.0, **kw) -> List[dict]:
    """Receive until ``count`` messages came (they stay in flight) or ``timeout``
    passed; return what came. SQS may return fewer than asked per call."""
    out: List[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        left = max(0.0, deadline - time.monotonic())
        out += receive(c, url, n=min(10, count - len(out)), wait=min(1, int(left)), **kw)
    return out


def receive_one(c, url: str, timeout: float = 5.0, **kw) -> dict:
    msgs = receive_n(c, url, 1, timeout=timeout, **kw)
    assert msgs, f"no message arrived on {name_of(url)} within {timeout}s"
    return msgs[0]


def stays_empty(c, url: str, window: float = 1.0, **kw) -> bool:
    """True when ReceiveMessage returns nothing for the whole ``window``. (Messages it
    does return are left in flight.)"""
    deadline = time.monotonic() + window
    while True:
        if receive(c, url, n=10, wait=0, **kw):
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.1)


def queue_attrs(c, url: str, *names: str) -> Dict[str, str]:
    return c.get_queue_attributes(QueueUrl=url, AttributeNames=list(names) or ["All"]).get(
        "Attributes", {})


def wait_for(pred: Callable[[], Any], timeout: float = 5.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------
# Raw signed HTTP (JSON and Query protocols)


@dataclass
class Response:
    status: int
    headers: Dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else {}

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _SigV4At(botocore.auth.SigV4Auth):
    """SigV4Auth signing as if the clock read ``when`` (for the skew tests)."""

    def __init__(self, credentials, service_name, region_name, when: datetime.datetime):
        super().__init__(credentials, service_name, region_name)
        self._when = when

    def add_auth(self, request):
        request.context["timestamp"] = self._when.strftime(botocore.auth.SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)


def sign(ep: Endpoint, method: str, url: str, body: bytes, headers: Dict[str, str], *,
         access_key: Optional[str] = None, secret_key: Optional[str] = None,
         when: Optional[datetime.datetime] = None, service: str = "sqs") -> Dict[str, str]:
    """Headers with SigV4 ``Authorization`` and ``X-Amz-Date`` added (for ``service``)."""
    creds = botocore.credentials.Credentials(access_key or ep.access_key,
                                             secret_key or ep.secret_key)
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    if when is None:
        botocore.auth.SigV4Auth(creds, service, ep.region).add_auth(req)
    else:
        _SigV4At(creds, service, ep.region, when.astimezone(datetime.timezone.utc)).add_auth(req)
    return dict(req.headers.items())


def raw_request(ep: Endpoint, method: str, path: str, body: bytes = b"",
                headers: Optional[Dict[str, str]] = None, *, sign_it: bool = True,
                access_key: Optional[str] = None, secret_key: Optional[str] = None,
                when: Optional[datetime.datetime] = None, timeout: float = 30,
                service: str = "sqs") -> Response:
    url = ep.url + path
    hdrs = {"Host": ep.netloc, **(headers or {})}
    if sign_it:
        hdrs = sign(ep, method, url, body, hdrs, access_key=access_key, secret_key=secret_key,
                    when=when, service=service)
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if body or method in ("POST", "PUT"):
            if not any(k.lower() == "content-length" for k in hdrs):
                conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def json_error_code(r: Response) -> str:
    """The legacy (Query) error code of a JSON protocol error answer, the way botocore
    derives it: from ``x-amzn-query-error`` if present, else from ``__type``."""
    header = r.headers.get("x-amzn-query-error", "")
    if header.split(";")[0]:
        return header.split(";")[0]
    try:
        t = r.json().get("__type", "")
    except ValueError:
        return ""
    return t.rsplit("#", 1)[-1]


def json_request(ep: Endpoint, action: str, payload: Optional[dict] = None, **kw) -> Response:
    """One AWS JSON 1.0 request (``X-Amz-Target: AmazonSQS.<action>``)."""
    body = json.dumps(payload or {}).encode("utf-8")
    headers = {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{action}"}
    return raw_request(ep, "POST", "/", body, headers, **kw)


def flat_attributes(d: Mapping[str, Any], prefix: str = "Attribute") -> Dict[str, str]:
    """``{"A": "1"}`` -> ``{"Attribute.1.Name": "A", "Attribute.1.Value": "1"}``."""
    out: Dict[str, str] = {}
    for i, (k, v) in enumerate(d.items(), 1):
        out[f"{prefix}.{i}.Name"] = k
        out[f"{prefix}.{i}.Value"] = str(v)
    return out


def flat_list(values: Iterable[str], prefix: str) -> Dict[str, str]:
    """``["a", "b"]``, ``"AttributeName"`` -> ``{"AttributeName.1": "a", ...}``."""
    return {f"{prefix}.{i}": v for i, v in enumerate(values, 1)}


def flat_message_attributes(d: Mapping[str, Mapping[str, Any]],
                            prefix: str = "MessageAttribute") -> Dict[str, str]:
    import base64

    out: Dict[str, str] = {}
    for i, (k, v) in enumerate(d.items(), 1):
        out[f"{prefix}.{i}.Name"] = k
        out[f"{prefix}.{i}.Value.DataType"] = v["DataType"]
        if "BinaryValue" in v:
            out[f"{prefix}.{i}.Value.BinaryValue"] = base64.b64encode(v["BinaryValue"]).decode()
        else:
            out[f"{prefix}.{i}.Value.StringValue"] = v["StringValue"]
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass
class QueryResponse(Response):
    root: Optional[ET.Element] = None

    @property
    def namespace(self) -> Optional[str]:
        if self.root is None or not self.root.tag.startswith("{"):
            return None
        return self.root.tag[1:].split("}", 1)[0]

    @property
    def root_name(self) -> Optional[str]:
        return None if self.root is None else _local(self.root.tag)

    def all(self, name: str) -> List[ET.Element]:
        """Every element (at any depth) whose local name is ``name``."""
        if self.root is None:
            return []
        return [e for e in self.root.iter() if _local(e.tag) == name]

    def value(self, name: str) -> Optional[str]:
        """Text of the first element whose local name is ``name``."""
        found = self.all(name)
        return found[0].text if found else None

    def values(self, name: str) -> List[str]:
        return [e.text or "" for e in self.all(name)]

    def pairs(self, entry: str = "Attribute", key: str = "Name", value: str = "Value") -> Dict[str, str]:
        """``<Attribute><Name>k</Name><Value>v</Value></Attribute>`` entries as a dict
        (only direct children of each entry)."""
        out: Dict[str, str] = {}
        for e in self.all(entry):
            kids = {_local(c.tag): c for c in e}
            if key in kids and value in kids and len(kids[value]) == 0:
                out[kids[key].text or ""] = kids[value].text or ""
        return out

    @property
    def error(self) -> Optional[Dict[str, str]]:
        """``{"Type":..., "Code":..., "Message":...}`` of an ``<ErrorResponse>``."""
        if self.root_name != "ErrorResponse":
            return None
        errs = self.all("Error")
        if not errs:
            return {}
        return {_local(c.tag): (c.text or "") for c in errs[0]}


class QueryClient:
    """Signed AWS Query protocol requests (``Action=...&Version=2012-11-05&...`` form
    bodies POSTed to ``/`` or to a queue URL's path); XML answers parsed."""

    def __init__(self, ep: Endpoint, access_key: Optional[str] = None,
                 secret_key: Optional[str] = None):
        self.ep = ep
        self.access_key = access_key
        self.secret_key = secret_key

    def call(self, action: str, params: Optional[Mapping[str, Any]] = None, *, path: str = "/",
             sign_it: bool = True, when: Optional[datetime.datetime] = None,
             secret_key: Optional[str] = None) -> QueryResponse:
        form = {"Action": action, "Version": API_VERSION}
        form.update({k: str(v) for k, v in (params or {}).items()})
        body = urllib.parse.urlencode(form, quote_via=urllib.parse.quote).encode("utf-8")
        r = raw_request(self.ep, "POST", path, body, {"Content-Type": FORM_CONTENT_TYPE},
                        sign_it=sign_it, access_key=self.access_key,
                        secret_key=secret_key or self.secret_key, when=when)
        root = None
        if r.body.strip().startswith(b"<"):
            try:
                root = ET.fromstring(r.body)
            except ET.ParseError:
                root = None
        return QueryResponse(r.status, r.headers, r.body, root)

    def ok(self, action: str, params: Optional[Mapping[str, Any]] = None, **kw) -> QueryResponse:
        """Like ``call`` but asserts HTTP 200 and a ``<ActionResponse>`` in the SQS
        namespace."""
        r = self.call(action, params, **kw)
        assert r.status == 200, f"{action}: HTTP {r.status}: {r.text[:2000]}"
        assert r.root_name == f"{action}Response", r.text[:2000]
        assert r.namespace == XML_NS, r.text[:2000]
        return r


# ---------------------------------------------------------------------------------
# What the ``sqs`` fixture hands a test


@dataclass
class Sqs:
    ep: Endpoint
    client: Any
    urls: List[str] = field(default_factory=list)
    _query: Optional[QueryClient] = None

    @property
    def query(self) -> QueryClient:
        if self._query is None:
            self._query = QueryClient(self.ep)
        return self._query

    def queue(self, name: Optional[str] = None, *, fifo: bool = False, kind: str = "q",
              tags: Optional[Dict[str, str]] = None, **attributes: Any) -> str:
        """CreateQueue (FifoQueue=true for ``fifo``), remembered for deletion; attribute
        values may be ints or strings. Returns the QueueUrl."""
        name = name or qname(kind, fifo=fifo)
        attrs = {k: str(v) for k, v in attributes.items()}
        if fifo:
            attrs.setdefault("FifoQueue", "true")
        kw: Dict[str, Any] = {"QueueName": name}
        if attrs:
            kw["Attributes"] = attrs
        if tags:
            kw["tags"] = tags
        url = self.client.create_queue(**kw)["QueueUrl"]
        self.track(url)
        return url

    def track(self, url: str) -> str:
        if url not in self.urls:
            self.urls.append(url)
        return url

    def attrs(self, url: str, *names: str) -> Dict[str, str]:
        return queue_attrs(self.client, url, *names)

    def arn(self, url: str) -> str:
        return self.attrs(url, "QueueArn")["QueueArn"]

    def send(self, url: str, body: str = "hello", **kw) -> dict:
        return self.client.send_message(QueueUrl=url, MessageBody=body, **kw)

    def cleanup(self) -> None:
        for url in reversed(self.urls):
            try:
                self.client.delete_queue(QueueUrl=url)
            except Exception:
                pass
        self.urls.clear()


# ---------------------------------------------------------------------------------
# aws CLI (awscli v1 from PyPI; it shares botocore with boto3)


def aws_cli_command() -> Optional[List[str]]:
    try:
        import awscli  # noqa: F401
        return [sys.executable, "-m", "awscli"]
    except ImportError:
        exe = shutil.which("aws")
        return [exe] if exe else None


def aws_cli(ep: Endpoint, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``aws --endpoint-url EP <args>`` with guest credentials from the environment
    and no config or credentials file of the developer's (``~/.aws``) in play."""
    cmd = aws_cli_command()
    if cmd is None:
        pytest.skip("aws CLI not installed (pip install -r tests/python/requirements.txt)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    empty = tempfile.mkdtemp(prefix="pytest-awscli-")
    env.update({
        "AWS_ACCESS_KEY_ID": ep.access_key,
        "AWS_SECRET_ACCESS_KEY": ep.secret_key,
        "AWS_DEFAULT_REGION": ep.region,
        "AWS_CONFIG_FILE": os.path.join(empty, "config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(empty, "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
        "HOME": empty,
    })
    try:
        return subprocess.run([*cmd, "--endpoint-url", ep.url, *args], env=env,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def aws_cli_json(ep: Endpoint, *args: str) -> Any:
    """Run the CLI with ``--output json``; assert it succeeded; parsed output (None
    for commands that print nothing)."""
    r = aws_cli(ep, *args, "--output", "json")
    assert r.returncode == 0, f"aws {' '.join(args)} failed ({r.returncode}):\n{r.stderr}"
    return json.loads(r.stdout) if r.stdout.strip() else None
