"""What a connector sent to the ERP and what came back, kept with the attempt that did it.

The engine opens a capture around one posting attempt (`exchanges_captured`); a connector
reports each request it makes (`exchange_record`), and the engine stores the capture on the
event that ends the attempt. A person reading a failed record then sees exactly which request
was refused and the ERP's own answer.

Secrets never get into a capture: credential headers are replaced, and in bodies, forms and
query strings every field whose name looks secret (password, secret, token, key, credential,
authorization, signature) is replaced, at any depth. Captures are bounded so that a record's
events stay small: at most `MAX_EXCHANGES` calls per attempt, each body cut at
`MAX_BODY_CHARS`, and once an attempt has kept `MAX_ATTEMPT_CHARS` of bodies the later calls
keep their method, address, status and time but not their bodies.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from syncengine.erps import wire

MAX_EXCHANGES = 20
MAX_BODY_CHARS = 16_000
MAX_ATTEMPT_CHARS = 64_000
REDACTED = "[redacted]"

# Header names compared in lower case.
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "ocp-apim-subscription-key", "x-crosswalk-signature",
})  # fmt: skip
# A field is secret when its name, lower-cased without separators, contains one of these.
SECRET_NAME = re.compile(r"password|passwd|secret|token|apikey|credential|authorization|signature")
# Headers worth reading; the rest (dates, servers, trace ids …) only add noise.
KEPT_HEADERS = frozenset({
    "content-type", "if-match", "etag", "isolation", "retry-after", "location", "prefer",
    "request-id", "ms-correlation-x",
})  # fmt: skip


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    # Remembered: bodies repeat the same few dozen field names on every call.
    return bool(SECRET_NAME.search(re.sub(r"[-_. ]", "", name.lower())))


# Values `redacted` returns as they are, checked by exact type first: a posting's bodies are
# thousands of them, and the Mapping check below is an abstract-class check, slow in a loop.
_LEAVES = frozenset({str, int, float, bool, type(None)})


def redacted(value: Any) -> Any:
    """A copy of a JSON-like value with every secret-named field's value replaced."""
    if type(value) in _LEAVES:
        return value
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED if is_secret_name(str(key)) else redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redacted(item) for item in value]
    return value


def redacted_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (name, REDACTED if is_secret_name(name) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="$'(), ")))


def redacted_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in (headers or {}).items():
        lower = name.lower()
        if lower in SECRET_HEADERS or is_secret_name(lower):
            kept[name] = REDACTED
        elif lower in KEPT_HEADERS:
            kept[name] = str(value)
    return kept


@dataclass
class Capture:
    """The exchanges of one attempt, already redacted and bounded."""

    exchanges: list[dict[str, Any]] = field(default_factory=list)
    omitted: int = 0
    body_chars: int = 0

    def as_data(self) -> dict[str, Any]:
        """For an event's `data`: nothing at all when the attempt made no call."""
        if not self.exchanges and not self.omitted:
            return {}
        data: dict[str, Any] = {"exchanges": self.exchanges}
        if self.omitted:
            data["exchanges_omitted"] = self.omitted
        return data

    def _body(self, body: Any) -> str | None:
        if body is None or body == b"" or body == "":
            return None
        text = _body_text(body)
        room = MAX_ATTEMPT_CHARS - self.body_chars
        if room <= 0:
            return f"[{len(text):,} characters not kept: this attempt's calls filled the record]"
        limit = min(MAX_BODY_CHARS, room)
        if len(text) > limit:
            text = text[:limit] + f"\n… [{len(text) - limit:,} more characters not kept]"
        self.body_chars += len(text)
        return text


_current: ContextVar[Capture | None] = ContextVar("crosswalk_exchanges", default=None)


@contextmanager
def exchanges_captured() -> Iterator[Capture]:
    """Collect the exchanges connectors report inside the block (this thread or task only)."""
    capture = Capture()
    token = _current.set(capture)
    try:
        yield capture
    finally:
        _current.reset(token)


def exchanges_made() -> int:
    """How many calls the current capture has seen, kept or only counted (0 outside one)."""
    capture = _current.get()
    return len(capture.exchanges) + capture.omitted if capture is not None else 0


def exchange_record(
    *,
    method: str,
    url: str,
    request_headers: Mapping[str, str] | None = None,
    request_body: Any = None,
    status: int | None = None,
    response_headers: Mapping[str, str] | None = None,
    response_body: Any = None,
    elapsed_ms: int | None = None,
    error: str = "",
) -> None:
    """Report one request and its answer (or `error`, when none came). A no-op outside a capture,
    so connectors call it unconditionally."""
    capture = _current.get()
    if capture is None:
        return
    if len(capture.exchanges) >= MAX_EXCHANGES:
        capture.omitted += 1
        return
    capture.exchanges.append({
        "method": method.upper(),
        "url": redacted_url(url),
        "request_headers": redacted_headers(request_headers),
        "request_body": capture._body(request_body),
        "status": status,
        "response_headers": redacted_headers(response_headers),
        "response_body": capture._body(response_body),
        "elapsed_ms": elapsed_ms,
        "error": error,
    })  # fmt: skip


def _body_text(body: Any) -> str:
    """JSON with its secrets replaced; text that is not JSON kept as it is (a form is read as
    fields, so its secrets are replaced too)."""
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            body = wire.loads(body)
        except ValueError:
            if "=" in body and "\n" not in body:  # an url-encoded form
                pairs = parse_qsl(body, keep_blank_values=True)
                if pairs:
                    return urlencode([
                        (name, REDACTED if is_secret_name(name) else value)
                        for name, value in pairs
                    ])  # fmt: skip
            return body
    try:
        # Compact: the C encoder (indenting needs the pure-Python one on every posting); the
        # console indents the bodies a person opens.
        return wire.dumps(redacted(body))
    except (TypeError, ValueError):  # not JSON-like after all: shown as Python writes it
        return repr(redacted(body))
