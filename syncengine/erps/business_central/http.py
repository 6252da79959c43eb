"""Talking to Business Central's API v2.0: settings, the Entra token, requests and `$batch`.

Every call has a timeout. The access token is cached per process until five minutes before it
expires, and fetched again (once) when Business Central answers 401. Failures come back as
`ConnectorError`s (see errors.py); a create whose answer was lost is `outcome_unknown`, so the
engine looks the document up before it tries again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from syncengine.erps import wire
from syncengine.erps.base import ConnectorError, FailureCategory
from syncengine.erps.business_central.errors import error_for, retry_after_seconds
from syncengine.erps.exchanges import exchange_record
from syncengine.models import Connection
from syncengine.plans import PostingPolicy

MAX_BATCH_OPERATIONS = 100  # Business Central refuses a larger $batch
TOKEN_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class BcSettings(PostingPolicy):
    """`Connection.erp_settings` of a Business Central connection (nothing secret here), with
    the posting policies every target has (`syncengine.plans.PostingPolicy`)."""

    tenant_id: str
    environment: str = "production"
    company_id: str = ""
    company_name: str = ""
    api_base_url: str = "https://api.businesscentral.dynamics.com"
    login_base_url: str = "https://login.microsoftonline.com"
    web_base_url: str = "https://businesscentral.dynamics.com"
    scope: str = "https://api.businesscentral.dynamics.com/.default"
    post_policy: str = "post"  # "post": documents are posted; "draft": left for a person to post
    create_customers: bool = False
    create_projects: bool = False
    customer_number_prefix: str = ""
    local_currency: str = "USD"
    line_tax_code: str = ""  # a tax group for every line, e.g. a non-taxable one; blank: none sent
    time_entries: str = "time_registration"
    job_task_number: str = ""
    time_dimensions: dict[str, str] = field(default_factory=dict)  # plan field → dimension code
    cost_journal: str = ""  # the general journal (batch code) job costs go into, e.g. "CROSSWALK"
    create_vendors: bool = False
    vendor_number_prefix: str = ""
    # The postingValidation of a created customer's default dimensions: "" (none sent), "Code
    # Mandatory" or "Same Code".
    customer_dimension_posting: str = ""
    timeout_seconds: float = 30.0

    @classmethod
    def of(cls, connection: Connection) -> BcSettings:
        raw = dict(connection.erp_settings or {})
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        settings = cls(**known)
        missing = [name for name in ("tenant_id", "environment") if not getattr(settings, name)]
        if not (settings.company_id or settings.company_name):
            missing.append("company_id or company_name")
        if missing:
            raise ConnectorError(
                f"The Business Central settings of {connection.name} lack {', '.join(missing)}.",
                category=FailureCategory.CONNECTION, transient=False,
            )  # fmt: skip
        if settings.post_policy not in ("post", "draft"):
            raise ConnectorError(
                f"post_policy must be 'post' or 'draft', not {settings.post_policy!r}.",
                category=FailureCategory.CONNECTION, transient=False,
            )  # fmt: skip
        return settings

    @property
    def api_root(self) -> str:
        base = self.api_base_url.rstrip("/")
        return f"{base}/v2.0/{self.tenant_id}/{self.environment}/api/v2.0"

    @property
    def token_url(self) -> str:
        return f"{self.login_base_url.rstrip('/')}/{self.tenant_id}/oauth2/v2.0/token"


def odata_literal(value: str) -> str:
    """A string literal for $filter: quotes doubled, as OData wants."""
    return "'" + value.replace("'", "''") + "'"


def odata_time(moment: datetime) -> str:
    """A DateTimeOffset literal for $filter, in UTC to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Tokens by (token URL, client id, hash of the secret): a changed secret never reuses a token.
_TOKENS: dict[str, tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()
# Company ids (when configured by name) and names (for deep links), per process.
_COMPANIES: dict[tuple[str, str, str], tuple[str, str]] = {}


def forget_cached_state() -> None:
    """For tests: drop cached tokens and companies."""
    with _TOKENS_LOCK:
        _TOKENS.clear()
    _COMPANIES.clear()


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class BcApi:
    def __init__(self, *, settings: BcSettings, client_id: str, client_secret: str) -> None:
        self.settings = settings
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = requests.Session()
        digest = hashlib.sha256(client_secret.encode()).hexdigest()
        self._token_key = f"{settings.token_url}\x00{client_id}\x00{digest}"

    # --- the token ------------------------------------------------------------------------------

    def _token(self, *, fresh: bool = False) -> str:
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._token_key)
            if cached and not fresh and cached[1] > time.monotonic():
                return cached[0]
        token, lifetime = self._fetch_token()
        margin = TOKEN_MARGIN_SECONDS if lifetime > 2 * TOKEN_MARGIN_SECONDS else lifetime / 2
        with _TOKENS_LOCK:
            _TOKENS[self._token_key] = (token, time.monotonic() + lifetime - margin)
        return token

    def _fetch_token(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "scope": self.settings.scope,
        }
        started = time.monotonic()
        try:
            answer = self._session.post(
                self.settings.token_url, data=form, timeout=self.settings.timeout_seconds
            )
        except requests.RequestException as error:
            _record(method="POST", url=self.settings.token_url, body=form, started=started,
                    error=type(error).__name__)  # fmt: skip
            raise ConnectorError(
                f"Microsoft Entra could not be reached for a token ({type(error).__name__}).",
                category=FailureCategory.CONNECTION, transient=True,
            ) from None  # fmt: skip
        _record(method="POST", url=self.settings.token_url, body=form, started=started,
                answer=answer)  # fmt: skip
        body = _json_or_none(answer)
        if answer.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            return str(body["access_token"]), float(body.get("expires_in") or 3600)
        if answer.status_code >= 500 or answer.status_code == 429:
            raise ConnectorError(
                f"Microsoft Entra answered HTTP {answer.status_code} to the token request.",
                category=FailureCategory.CONNECTION, transient=True,
                retry_after_seconds=retry_after_seconds(answer.headers.get("Retry-After")),
            )  # fmt: skip
        # Only Entra's error code: its description may repeat the client id and tenant.
        code = body.get("error", "") if isinstance(body, dict) else ""
        raise ConnectorError(
            "Microsoft Entra refused the connection's client id and secret"
            + (f" ({code})" if code else "")
            + ": check them, and that the app is registered for this tenant.",
            category=FailureCategory.AUTH, transient=True,
        )  # fmt: skip

    # --- calls ----------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        what: str,
        creates: bool = False,
    ) -> Response:
        """One request; a 2xx answer, else ConnectorError. `url` is absolute or relative to the
        API root. `creates`: the request writes, so a lost answer leaves the outcome unknown."""
        if not url.startswith("http"):
            url = f"{self.settings.api_root}/{url}"
        data = wire.dumps(body).encode() if body is not None else None
        sent_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            sent_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            sent_headers["Authorization"] = f"Bearer {self._token(fresh=attempt == 2)}"
            answer = self._send(method, url, data, sent_headers, params, what, creates)
            if answer.status_code != 401 or attempt == 2:
                break
        response = Response(answer.status_code, _json_or_none(answer), dict(answer.headers))
        if 200 <= response.status < 300:
            return response
        raise error_for(
            status=response.status, body=response.body, what=what, creates=creates,
            retry_after=retry_after_seconds(answer.headers.get("Retry-After")),
        )  # fmt: skip

    def _send(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str],
        params: dict[str, str] | None,
        what: str,
        creates: bool,
    ) -> requests.Response:
        started = time.monotonic()
        shown_url = f"{url}?{urlencode(params)}" if params else url
        try:
            answer = self._session.request(
                method, url, data=data, headers=headers, params=params,
                timeout=self.settings.timeout_seconds,
            )  # fmt: skip
        except requests.RequestException as error:
            sent, reason = _why_unanswered(error, self.settings.timeout_seconds)
            _record(method=method, url=shown_url, headers=headers, body=data, started=started,
                    error=reason)  # fmt: skip
            raise _unanswered(sent=sent, reason=reason, what=what, creates=creates) from None
        _record(method=method, url=shown_url, headers=headers, body=data, started=started,
                answer=answer)  # fmt: skip
        return answer

    def get_all(
        self, url: str, *, params: dict[str, str] | None = None, what: str
    ) -> Iterator[dict[str, Any]]:
        """Every record of a collection, following @odata.nextLink page after page."""
        next_url: str | None = url
        while next_url:
            page = self.call("GET", next_url, params=params, what=what).body or {}
            yield from page.get("value", [])
            next_url = page.get("@odata.nextLink")
            params = None  # the next link carries them

    def batch(self, operations: list[dict[str, Any]], *, what: str) -> list[Response]:
        """Send operations as one `$batch` that Business Central commits whole or not at all
        (`Isolation: snapshot`). The answers, in order; the first refused one raises."""
        request = batch_request(operations, what=what)
        answer = self.call(
            request["method"], request["url"], body=request["body"], what=what, creates=True,
            headers=request["headers"],
        )  # fmt: skip
        by_id = {str(item.get("id")): item for item in (answer.body or {}).get("responses", [])}
        responses = []
        for operation in operations:
            item = by_id.get(operation["id"], {})
            status = int(item.get("status") or 0)
            headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
            if not 200 <= status < 300:
                # Snapshot isolation: one refusal rolls the whole batch back, so nothing stayed.
                raise error_for(
                    status=status or 500, body=item.get("body"), what=what, creates=False,
                    retry_after=retry_after_seconds(headers.get("retry-after")),
                )  # fmt: skip
            responses.append(Response(status, item.get("body"), headers))
        return responses

    # --- the company ----------------------------------------------------------------------------

    def company(self) -> tuple[str, str]:
        """(id, name) of the connection's company, read once per process."""
        settings = self.settings
        key = (settings.api_root, settings.company_id, settings.company_name)
        if key not in _COMPANIES:
            if settings.company_id:
                found = self.call(
                    "GET", f"companies({settings.company_id})", what="read the company"
                ).body
            else:
                matches = list(self.get_all(
                    "companies",
                    params={"$filter": f"name eq {odata_literal(settings.company_name)}"},
                    what="find the company by name",
                ))  # fmt: skip
                if not matches:
                    raise ConnectorError(
                        f"Business Central has no company named {settings.company_name!r} in "
                        f"environment {settings.environment}.",
                        category=FailureCategory.CONNECTION, transient=False,
                    )  # fmt: skip
                found = matches[0]
            _COMPANIES[key] = (str(found["id"]), str(found.get("name") or found.get("displayName")))
        return _COMPANIES[key]

    def company_path(self) -> str:
        return f"companies({self.company()[0]})"

    def deep_link(self, *, page: int, number: str) -> str:
        """The Business Central web client showing one document."""
        settings = self.settings
        base = settings.web_base_url.rstrip("/")
        company = quote(self.company()[1], safe="")
        number_filter = quote(f"'No.' IS '{number}'", safe="")
        return (
            f"{base}/{settings.tenant_id}/{settings.environment}/?company={company}"
            f"&page={page}&filter={number_filter}"
        )


def _json_or_none(answer: requests.Response) -> Any:
    if not answer.content:
        return None
    try:
        return wire.loads(answer.content)
    except ValueError:
        return None


def _refused_before_sending(error: requests.ConnectionError) -> bool:
    text = repr(error)
    return "NewConnectionError" in text or "NameResolutionError" in text


def _record(
    *,
    method: str,
    url: str,
    body: Any,
    started: float,
    headers: dict[str, str] | None = None,
    answer: requests.Response | None = None,
    error: str = "",
) -> None:
    """Report the exchange to the engine's capture (secrets are redacted there)."""
    exchange_record(
        method=method,
        url=url,
        request_headers=headers,
        request_body=body,
        status=answer.status_code if answer is not None else None,
        response_headers=dict(answer.headers) if answer is not None else None,
        response_body=answer.content if answer is not None else None,
        elapsed_ms=round((time.monotonic() - started) * 1000),
        error=error,
    )


def _unanswered(*, sent: bool, reason: str, what: str, creates: bool) -> ConnectorError:
    unknown = creates and sent
    message = f"Business Central {reason} when asked to {what}"
    message += (
        "; whether it took the request is unknown, so it is looked up before any retry."
        if unknown
        else "; it will be retried."
    )
    return ConnectorError(
        message, category=FailureCategory.CONNECTION, transient=True, outcome_unknown=unknown
    )


def _why_unanswered(error: requests.RequestException, timeout: float) -> tuple[bool, str]:
    """(whether the request may have reached Business Central, why no answer came)."""
    if isinstance(error, requests.ConnectTimeout):
        return False, "could not connect in time"
    if isinstance(error, requests.Timeout):
        return True, f"gave no answer within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        # Refused before anything was sent, or dropped while sending or answering.
        if _refused_before_sending(error):
            return False, "could not be reached"
        return True, "dropped the connection"
    return True, f"failed ({type(error).__name__})"


def batch_request(operations: list[dict[str, Any]], *, what: str) -> dict[str, Any]:
    """The one `$batch` request of `operations`, as `BcApi.batch` sends it and a preview shows
    it; refused before anything is sent when it holds more than Business Central takes."""
    if len(operations) > MAX_BATCH_OPERATIONS:
        raise ConnectorError(
            f"Business Central could not {what}: it needs {len(operations)} requests and one "
            f"all-or-nothing $batch holds at most {MAX_BATCH_OPERATIONS}. Nothing was sent. "
            "Split the document in ServiceTrade, or post it by hand.",
            category=FailureCategory.VALUE, transient=False,
        )  # fmt: skip
    return {"method": "POST", "url": "$batch", "headers": {"Isolation": "snapshot"},
            "body": {"requests": operations}}  # fmt: skip
