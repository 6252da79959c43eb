"""An HTTP client for ServiceTrade's REST API (facts: ../shared/CONTRACTS.md §1 and
validators/servicetrade/api-facts.json; what is unverified is marked [U] here and in
docs/connectors/servicetrade.md).

- Every answer is `{"data": …, "messages": {"error": [...], "validation": [...]}}`; callers get
  `data`. Lists are `data.{<listKey>: [...], page, totalPages}`, pages numbered from 1, each
  entity with its documented `limit` cap. Dates are Unix epoch seconds both ways.
- Authentication is OAuth2 (client credentials, password or a stored refresh token: the access
  token is renewed five minutes before it expires and once more when an answer is 401) or the
  legacy session (`POST /auth`, one token per run, `DELETE /auth` when the run ends, because
  ServiceTrade keeps only a few sessions per user and drops the oldest).
- 429 waits for Retry-After, 5xx and lost connections back off exponentially with jitter; both
  only up to `max_attempts`. A POST that creates something is not re-sent after its answer was
  lost (it may have landed). Every call has a timeout.
- Secrets never appear in an exception, a log line or a message: errors name the call, the
  status and ServiceTrade's own message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import requests

from syncengine.erps import wire

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.servicetrade.com/api"
AUTH_MODES = ("oauth2_client_credentials", "oauth2_password", "oauth2_refresh_token", "session")
TOKEN_MARGIN_SECONDS = 300
RETRY_STATUSES = frozenset({500, 502, 503, 504})
# Every invoice status ServiceTrade documents; sent explicitly so a list never depends on the
# API's default status filter.
INVOICE_STATUSES = (
    "ok", "internal_review", "pending_accounting", "processed", "paid", "sent", "failed", "void",
)  # fmt: skip
# Documented `limit` caps per list (api-facts.json); lists without a documented cap get no limit.
PAGE_LIMITS = {"invoice": 2000, "job": 2000, "location": 5000}
# List keys of the master data lists ([U] contacts: the key is not in the sources).
MASTER_LIST_KEYS = {"company": "companies", "location": "locations", "contact": "contacts"}
# Webhook entity type codes (CONTRACTS.md §1); invoices have none, they change with their job.
WEBHOOK_ENTITY_TYPES = {
    "job": 3, "user": 4, "company": 5, "deficiency": 10, "location": 11, "appointment": 16,
    "contact": 22,
}  # fmt: skip
EXTERNAL_ID_ENTITY_TYPES = (
    "asset", "company", "contact", "contract", "deficiency", "location", "job", "jobitem",
    "libitem", "quote", "user",
)  # fmt: skip


class ServiceTradeError(Exception):
    """A call that did not succeed. `transient`: trying again later may work; `status` is the
    HTTP status (0 when no answer came); `outcome_unknown`: a create whose answer was lost."""

    def __init__(
        self, message: str, *, status: int = 0, transient: bool = False,
        outcome_unknown: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.message = message
        self.status = status
        self.transient = transient
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class StSettings:
    """`Connection.source_settings` for the API (nothing secret here)."""

    base_url: str = DEFAULT_BASE_URL
    auth_mode: str = "oauth2_client_credentials"
    # [U] CONTRACTS.md gives /oauth2/token at the host root, api-facts.json (official SDK) under
    # /api; the default follows the SDK and either can be set here.
    token_url: str = ""
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 60.0
    max_retry_after_seconds: float = 300.0
    page_limit: int = 0  # 0: the documented cap of each list
    poll_interval_seconds: int = 300
    poll_overlap_seconds: int = 120
    backfill_window_days: int = 31
    external_system: str = "crosswalk"
    # [U] The comment entity type code of invoices is not in the sources; 0: reasons go to the
    # invoice's notes instead (a documented PUT field).
    invoice_comment_entity_type: int = 0
    api: bool = False  # polling and write-back run for this connection
    write_back: bool = False
    webhook_base_url: str = ""
    clock_events: bool = True  # clock events become timecards (sources/servicetrade_api/clock.py)
    clock_lookback_days: int = 2  # a poll re-reads clock events from the week of cursor − this
    # activity (onsite, enroute, …) → the labor type the LABOR_TYPE map knows; else "standard"
    clock_labor_types: dict[str, str] = field(default_factory=dict)
    # ERP purchase orders → job items on their ServiceTrade job (beat; purchase_orders.py)
    purchase_order_job_items: bool = False
    # Companies, locations and contacts feed two-way master data (masterdata/) on every way in
    # (webhook, polling, backfill --master-data); see master.py.
    master_data: bool = False

    @classmethod
    def of(cls, raw: dict[str, Any]) -> StSettings:
        known = {f.name: raw[f.name] for f in fields(cls) if f.name in raw}
        settings = cls(**known)
        if settings.auth_mode not in AUTH_MODES:
            raise ServiceTradeError(
                f"auth_mode must be one of {', '.join(AUTH_MODES)}, not {settings.auth_mode!r}."
            )
        return settings

    @property
    def api_root(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def oauth_token_url(self) -> str:
        return self.token_url or f"{self.api_root}/oauth2/token"


REQUIRED_SECRETS = {
    "oauth2_client_credentials": ("client_id", "client_secret"),
    "oauth2_password": ("client_id", "username", "password"),
    "oauth2_refresh_token": ("client_id", "refresh_token"),
    "session": ("username", "password"),
}


# --- epoch dates --------------------------------------------------------------------------------


def to_epoch(moment: datetime | date) -> int:
    """Whole Unix seconds; a date is its midnight UTC. Naive datetimes are refused."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime: give a time zone")
        return int(moment.timestamp())
    return int(datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp())


def from_epoch(seconds: int | str) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


# --- tokens -------------------------------------------------------------------------------------


@dataclass
class _Token:
    access: str
    expires_at: float  # time.time() seconds
    refresh: str = ""


# OAuth2 access tokens per process, by (token URL, mode, client id, user, hash of the secrets):
# a webhook or a poll reuses a live token instead of logging in every time.
_TOKENS: dict[str, _Token] = {}
_TOKENS_LOCK = threading.Lock()


def forget_cached_tokens() -> None:
    """For tests: drop every cached access token."""
    with _TOKENS_LOCK:
        _TOKENS.clear()


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (only to renew in time)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Page:
    number: int
    total_pages: int
    items: list[dict[str, Any]]
    body: bytes = b""  # the answer as it came, `{"data": {"invoices": [...], ...}}`


class ServiceTradeClient:
    """One run against one ServiceTrade account; use as a context manager so a session token
    is deleted when the run ends.

    `on_refresh_token` is called with a rotated refresh token so the caller can store it
    (encrypted); `sleep` is injectable so tests can see the waits without waiting.
    """

    def __init__(
        self,
        *,
        settings: StSettings,
        secrets: dict[str, Any],
        on_refresh_token: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._secrets = {name: str(value) for name, value in secrets.items() if value}
        missing = [n for n in REQUIRED_SECRETS[settings.auth_mode] if n not in self._secrets]
        if missing:
            raise ServiceTradeError(
                f"ServiceTrade credentials for {settings.auth_mode} lack {', '.join(missing)}."
            )
        self._on_refresh_token = on_refresh_token
        self._sleep = sleep
        self._clock = clock
        self._http = requests.Session()
        self._session_token = ""
        digest = hashlib.sha256(json.dumps(self._secrets, sort_keys=True).encode()).hexdigest()
        self._token_key = f"{settings.oauth_token_url}\x00{settings.auth_mode}\x00{digest}"
        self.calls = 0

    def __enter__(self) -> ServiceTradeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends a legacy session (its token is deleted on ServiceTrade's side)."""
        if self._session_token:
            try:
                self._send("DELETE", "/auth", authenticated=True, attempts=1)
            except ServiceTradeError as error:
                logger.warning("ServiceTrade session logout failed: %s", error.message)
            self._session_token = ""
        self._http.close()

    # --- authentication -------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        if self.settings.auth_mode == "session":
            if not self._session_token:
                self._session_login()
            return {"Cookie": f"PHPSESSID={self._session_token}"}
        return {"Authorization": f"Bearer {self._access_token()}"}

    def _session_login(self) -> None:
        body = {"username": self._secrets["username"], "password": self._secrets["password"]}
        data = self._send("POST", "/auth", json_body=body, authenticated=False, retry_unsafe=True)
        token = data.get("authToken") if isinstance(data, dict) else None
        if not token:
            raise ServiceTradeError("ServiceTrade's login answered without an authToken.")
        self._session_token = str(token)

    def _access_token(self) -> str:
        with _TOKENS_LOCK:
            token = _TOKENS.get(self._token_key)
        now = self._clock()
        if token is not None and token.expires_at - TOKEN_MARGIN_SECONDS > now:
            return token.access
        token = self._token_refreshed(token) if token and token.refresh else None
        token = token or self._token_granted(self._first_grant())
        with _TOKENS_LOCK:
            _TOKENS[self._token_key] = token
        return token.access

    def _invalidate_token(self) -> None:
        if self.settings.auth_mode == "session":
            self._session_token = ""
            return
        with _TOKENS_LOCK:
            token = _TOKENS.pop(self._token_key, None)
        if token is not None and token.refresh:
            # Keep the refresh token: a 401 on an access token re-logs in through it first.
            with _TOKENS_LOCK:
                _TOKENS[self._token_key] = _Token(access="", expires_at=0, refresh=token.refresh)

    def _first_grant(self) -> dict[str, str]:
        mode, s = self.settings.auth_mode, self._secrets
        if mode == "oauth2_client_credentials":
            return {"grant_type": "client_credentials", "client_id": s["client_id"],
                    "client_secret": s["client_secret"]}  # fmt: skip
        if mode == "oauth2_password":
            form = {"grant_type": "password", "client_id": s["client_id"],
                    "username": s["username"], "password": s["password"]}  # fmt: skip
            if s.get("client_secret"):
                form["client_secret"] = s["client_secret"]
            return form
        return self._refresh_form(s["refresh_token"])

    def _refresh_form(self, refresh_token: str) -> dict[str, str]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                "client_id": self._secrets["client_id"]}  # fmt: skip
        if self._secrets.get("client_secret"):
            form["client_secret"] = self._secrets["client_secret"]
        return form

    def _token_refreshed(self, token: _Token) -> _Token | None:
        try:
            return self._token_granted(self._refresh_form(token.refresh))
        except ServiceTradeError as error:
            if error.transient:
                raise
            return None  # the refresh token is no longer valid: log in again from scratch

    def _token_granted(self, form: dict[str, str]) -> _Token:
        grant = form["grant_type"]
        try:
            answer = self._http.post(
                self.settings.oauth_token_url, data=form, timeout=self.settings.timeout_seconds
            )
        except requests.RequestException as error:
            raise ServiceTradeError(
                f"ServiceTrade's token endpoint could not be reached ({type(error).__name__}).",
                transient=True,
            ) from None
        self.calls += 1
        body = _json_or_none(answer)
        if answer.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            said = body if isinstance(body, dict) else {}
            detail = said.get("error_description") or said.get("error") or ""
            raise ServiceTradeError(
                f"ServiceTrade refused the {grant} grant (HTTP {answer.status_code}"
                + (f": {str(detail)[:200]}" if detail else "") + ").",
                status=answer.status_code,
                transient=answer.status_code >= 500 or answer.status_code == 429,
            )  # fmt: skip
        access = str(body["access_token"])
        expires_at = jwt_expiry(access) or self._clock() + float(body.get("expires_in") or 3600)
        refresh = str(body.get("refresh_token") or form.get("refresh_token") or "")
        if body.get("refresh_token") and refresh != form.get("refresh_token", ""):
            if self._on_refresh_token is not None:
                self._on_refresh_token(refresh)
            self._secrets["refresh_token"] = refresh
        return _Token(access=access, expires_at=expires_at, refresh=refresh)

    # --- requests -------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=params)

    def post(self, path: str, body: Any, *, retry_unsafe: bool = False) -> Any:
        return self._send("POST", path, json_body=body, retry_unsafe=retry_unsafe)

    def put(self, path: str, body: Any) -> Any:
        return self._send("PUT", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self._send("DELETE", path)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
        retry_unsafe: bool = False,
        attempts: int | None = None,
    ) -> Any:
        return self._call(method, path, params=params, json_body=json_body,
                          authenticated=authenticated, retry_unsafe=retry_unsafe,
                          attempts=attempts)[0]  # fmt: skip

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
        retry_unsafe: bool = False,
        attempts: int | None = None,
    ) -> tuple[Any, bytes]:
        """`data` of one call and the raw answer, after the waits and the one re-login the
        contract allows."""
        url = self.settings.api_root + path
        limit = attempts or self.settings.max_attempts
        safe = method != "POST" or retry_unsafe
        body = wire.dumps(json_body) if json_body is not None else None
        relogged = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            if authenticated:
                headers.update(self._auth_headers())
            try:
                answer = self._http.request(method, url, params=_query(params), data=body,
                                            headers=headers,
                                            timeout=self.settings.timeout_seconds)  # fmt: skip
            except requests.RequestException as error:
                self.calls += 1
                what = f"{method} {path}: no answer from ServiceTrade ({type(error).__name__})"
                if not safe:
                    raise ServiceTradeError(what + "; it may have been applied.", transient=True,
                                            outcome_unknown=True) from None  # fmt: skip
                if attempt >= limit:
                    raise ServiceTradeError(what + ".", transient=True) from None
                self._wait(attempt, None)
                continue
            self.calls += 1
            status = answer.status_code
            if status == 401 and authenticated and not relogged:
                relogged = True
                self._invalidate_token()
                attempt -= 1  # a re-login is not a failed attempt
                continue
            if status == 429 or (status in RETRY_STATUSES and safe):
                retry_after = _retry_after(answer)
                too_long = retry_after is not None and (
                    retry_after > self.settings.max_retry_after_seconds
                )
                if attempt >= limit or too_long:
                    raise _error(method, path, answer, transient=True, retry_after=retry_after)
                self._wait(attempt, retry_after)
                continue
            if status >= 400:
                raise _error(method, path, answer, transient=status in RETRY_STATUSES,
                             unknown=status in RETRY_STATUSES and not safe)  # fmt: skip
            return _data(answer), answer.content

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        base = self.settings.backoff_base_seconds * 2 ** (attempt - 1)
        backoff = min(base, self.settings.backoff_cap_seconds) * random.uniform(0.5, 1.0)
        self._sleep(max(backoff, retry_after or 0.0))

    # --- lists ----------------------------------------------------------------------------------

    def pages(
        self,
        entity: str,
        list_key: str,
        params: dict[str, Any] | None = None,
        *,
        first_page: int = 1,
    ) -> Iterator[Page]:
        """Each page of a list, from `first_page` to `totalPages`."""
        query = dict(params or {})
        cap = PAGE_LIMITS.get(entity)
        limit = min(self.settings.page_limit or cap or 0, cap) if cap else self.settings.page_limit
        if limit:
            query["limit"] = limit
        number = first_page
        while True:
            data, raw = self._call("GET", f"/{entity}", params={**query, "page": number})
            if not isinstance(data, dict):
                raise ServiceTradeError(f"GET /{entity}: the answer holds no list page.")
            items = data.get(list_key) or []
            total = int(data.get("totalPages") or 0)
            yield Page(number=number, total_pages=total, items=list(items), body=raw)
            if number >= total or not items:
                return
            number += 1

    def all(self, entity: str, list_key: str, params: dict[str, Any] | None = None) -> list[Any]:
        return [item for page in self.pages(entity, list_key, params) for item in page.items]

    # --- reads ----------------------------------------------------------------------------------

    def invoice(self, invoice_id: int | str) -> dict[str, Any]:
        return dict(self.get(f"/invoice/{_id(invoice_id)}"))

    def invoice_raw(self, invoice_id: int | str) -> bytes:
        """One invoice's answer as it came: `{"data": {...}}`, which ingestion reads as is."""
        return self._call("GET", f"/invoice/{_id(invoice_id)}")[1]

    def invoice_pages(self, *, first_page: int = 1, **filters: Any) -> Iterator[Page]:
        """Invoices of every status unless `status` is given; filters in ServiceTrade's names
        (updatedAfter, createdBefore, jobId …), epoch seconds for dates."""
        params = {"status": ",".join(INVOICE_STATUSES), **filters}
        return self.pages("invoice", "invoices", params, first_page=first_page)

    def invoices(self, **filters: Any) -> list[dict[str, Any]]:
        return [item for page in self.invoice_pages(**filters) for item in page.items]

    def job(self, job_id: int | str) -> dict[str, Any]:
        return dict(self.get(f"/job/{_id(job_id)}"))

    def jobs(self, **filters: Any) -> list[dict[str, Any]]:
        # Without a status ServiceTrade lists only scheduled jobs; "all" still leaves out canceled.
        return self.all("job", "jobs", {"status": "all", **filters})

    def job_items(self, **filters: Any) -> list[dict[str, Any]]:
        return self.all("jobitem", "jobItems", filters)

    def clock_events(self, **filters: Any) -> list[dict[str, Any]]:
        return self.all("clock", "events", filters)

    def companies(self, **filters: Any) -> list[dict[str, Any]]:
        return self.all("company", "companies", filters)

    def company(self, company_id: int | str) -> dict[str, Any]:
        return dict(self.get(f"/company/{_id(company_id)}"))

    def locations(self, **filters: Any) -> list[dict[str, Any]]:
        return self.all("location", "locations", filters)

    def location(self, location_id: int | str) -> dict[str, Any]:
        return dict(self.get(f"/location/{_id(location_id)}"))

    def contacts(self, **filters: Any) -> list[dict[str, Any]]:
        return self.all("contact", "contacts", filters)  # [U] list key

    def contact(self, contact_id: int | str) -> dict[str, Any]:
        return dict(self.get(f"/contact/{_id(contact_id)}"))  # [U] path

    def master_pages(self, kind: str, *, first_page: int = 1, **filters: Any) -> Iterator[Page]:
        """Pages of companies, locations or contacts (`kind`: company, location, contact),
        filters in ServiceTrade's names (updatedAfter …, epoch seconds)."""
        return self.pages(kind, MASTER_LIST_KEYS[kind], filters, first_page=first_page)

    def users(self, **filters: Any) -> list[dict[str, Any]]:
        return self.all("user", "users", filters)

    def technicians(self) -> list[dict[str, Any]]:
        return self.users(role="technician")

    def service_lines(self) -> list[dict[str, Any]]:
        return self.all("serviceline", "servicelines", {})

    def offices(self) -> list[dict[str, Any]]:
        return self.all("office", "offices", {})  # [U] path and list key

    def external_ids(self, entity_type: str, entity_id: int | str) -> dict[str, str]:
        data = self.get(f"/externalid/{_entity_type(entity_type)}/{_id(entity_id)}")
        values = data.get("values") if isinstance(data, dict) else None
        return {str(k): str(v) for k, v in (values or {}).items()}

    def entity_by_external_id(self, entity_type: str, system: str, value: str) -> Any:
        return self.get(f"/externalid/{_entity_type(entity_type)}/{quote(system, safe='')}/"
                        f"{quote(value, safe='')}")  # fmt: skip

    # --- writes ---------------------------------------------------------------------------------

    def invoice_status_set(self, invoice_id: int | str, status: str) -> dict[str, Any]:
        """[U] The documented PUT fields do not list `status` (POST-only in the 2020 docs);
        ServiceTrade's own integrations set processed/failed, so this PUTs it."""
        if status not in INVOICE_STATUSES:
            raise ServiceTradeError(f"{status!r} is not a ServiceTrade invoice status.")
        return dict(self.put(f"/invoice/{_id(invoice_id)}", {"status": status}))

    def comment_add(self, *, entity_type: int, entity_id: int | str, content: str) -> Any:
        """[U] A comment on an entity (POST /comment): the reason an invoice failed."""
        body = {"entityType": entity_type, "entityId": int(_id(entity_id)), "content": content}
        return self.post("/comment", body)

    def external_id_set(
        self, *, entity_type: str, entity_id: int | str, system: str, value: str
    ) -> None:
        """Create or change one external id (POST creates, PUT changes; "" removes)."""
        path = (f"/externalid/{_entity_type(entity_type)}/{_id(entity_id)}/"
                f"{quote(system, safe='')}")  # fmt: skip
        current = self.external_ids(entity_type, entity_id).get(system)
        if current == value:
            return
        if current is None:
            self.post(path, {"value": value}, retry_unsafe=True)  # setting a value is idempotent
        else:
            self.put(path, {"value": value})

    def job_item_create(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/jobitem", body))

    def webhooks(self) -> list[dict[str, Any]]:
        return self.all("webhook", "webhooks", {})

    def webhook_create(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.post("/webhook", body))

    def webhook_update(self, webhook_id: int | str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.put(f"/webhook/{_id(webhook_id)}", body))

    def webhook_delete(self, webhook_id: int | str) -> None:
        self.delete(f"/webhook/{_id(webhook_id)}")


# --- helpers ------------------------------------------------------------------------------------


def _id(value: int | str) -> str:
    text = str(value).strip()
    if not text.isdigit():
        raise ServiceTradeError(f"{text[:40]!r} is not a ServiceTrade id.")
    return text


def _entity_type(name: str) -> str:
    if name not in EXTERNAL_ID_ENTITY_TYPES:
        raise ServiceTradeError(f"ServiceTrade keeps no external ids for {name!r}.")
    return name


def _query(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    query = {}
    for name, value in params.items():
        if isinstance(value, datetime | date):
            value = to_epoch(value)
        elif isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        query[name] = str(value)
    return query


def _json_or_none(answer: requests.Response) -> Any:
    try:
        return wire.loads(answer.content) if answer.content else None
    except ValueError:
        return None


def _data(answer: requests.Response) -> Any:
    body = _json_or_none(answer)
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    if answer.content and body is None:
        raise ServiceTradeError(f"ServiceTrade answered {answer.status_code} with a non-JSON body.")
    return body


def _retry_after(answer: requests.Response) -> float | None:
    value = answer.headers.get("Retry-After", "").strip()
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def _error(
    method: str,
    path: str,
    answer: requests.Response,
    *,
    transient: bool,
    unknown: bool = False,
    retry_after: float | None = None,
) -> ServiceTradeError:
    body = _json_or_none(answer)
    messages = body.get("messages") if isinstance(body, dict) else None
    said: list[str] = []
    if isinstance(messages, dict):
        for kind in ("error", "validation"):
            said += [str(m) for m in messages.get(kind) or []]
    text = f"{method} {path}: ServiceTrade answered {answer.status_code}"
    if said:
        text += ": " + "; ".join(said)[:500]
    if retry_after is not None:
        text += f" (retry after {retry_after:g} s)"
    return ServiceTradeError(text + ".", status=answer.status_code, transient=transient,
                             outcome_unknown=unknown)  # fmt: skip
