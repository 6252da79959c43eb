"""A small ServiceTrade for tests and the demo: a WSGI app that keeps its entities in memory and
follows the documented contract (CONTRACTS.md §1, api-facts.json).

- `{"data": …}` envelopes, errors as `{"messages": {"error": [...]}}`; lists as
  `data.{<listKey>, page, totalPages}` with the documented `limit` caps (larger asks are capped);
  dates in epoch seconds; filters updated*/created* (epoch), status (comma list), jobId.
- OAuth2 at /api/oauth2/token (client credentials, password, refresh token; JWT-shaped access
  tokens carrying `exp`, refresh tokens rotated) and the legacy session (POST/DELETE /api/auth,
  at most `max_sessions` per user, the oldest dropped). Anything else without a valid token: 401.
- Faults: `fail(...)` answers a status (429 with Retry-After, 5xx …) a number of times;
  `break_after(...)` fails every call of a path after N successful ones (a hard outage);
  `expire_tokens()` turns every access token stale at once.
- Companies, locations and contacts (`add_company`, `add_location`, `add_contact`) in the read
  shape master data reads (`address {street, city, state, postalCode}`, `phoneNumber` …), with
  `updatedAfter` and paging; a PUT of the write fields (`addressStreet` …) also changes
  `address`, so a record read after a write reads the value written.
- Clock events (`add_clock_event`): filtered by startTime/endTime (on the clock-in), userId(s)
  and jobId.
- Webhooks: `deliver()` posts ids-only messages the way ServiceTrade does: up to three attempts
  `webhook_retry_seconds` apart, any 2xx–4xx counts as delivered, then the message is dropped.

Not ServiceTrade's code nor its data: every shape here is written from the facts above.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from syncengine.erps import wire

LIST_KEYS = {
    "invoice": "invoices", "job": "jobs", "jobitem": "jobItems", "clock": "events",
    "company": "companies", "location": "locations", "contact": "contacts", "user": "users",
    "serviceline": "servicelines", "office": "offices", "webhook": "webhooks",
    "comment": "comments",
}  # fmt: skip
# (default, maximum) page size; lists with no documented limit use the fake's own default.
LIMITS = {"invoice": (2000, 2000), "job": (2000, 2000), "location": (10, 5000)}
OTHER_LIMIT = (100, 100)
INVOICE_STATUSES = (
    "ok", "internal_review", "pending_accounting", "processed", "paid", "sent", "failed", "void",
)  # fmt: skip
ENTITY_CODES = {3: "job", 4: "user", 5: "company", 10: "deficiency", 11: "location",
                16: "appointment", 22: "contact"}  # fmt: skip
CLIENT_ID = "crosswalk-client"
CLIENT_SECRET = "fake-client-secret"
USERNAME = "integration@example.com"
PASSWORD = "fake-password"


@dataclass
class Fault:
    method: str
    path: str
    status: int
    times: int
    retry_after: str | None = None


@dataclass
class Delivery:
    url: str
    body: dict[str, Any]
    attempts: list[int] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and 200 <= self.attempts[-1] < 500


class FakeServiceTrade:
    def __init__(self, *, token_lifetime: int = 3600, max_sessions: int = 5) -> None:
        self.lock = threading.RLock()
        self.base_url = ""  # set once served; the API lives under base_url + "/api"
        self.token_lifetime = token_lifetime
        self.max_sessions = max_sessions
        self.rotate_refresh_tokens = True
        self.webhook_retry_seconds = 5.0
        self.clock: Callable[[], float] = time.time
        self.entities: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in LIST_KEYS}
        self.external_ids: dict[tuple[str, int], dict[str, str]] = {}
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = {"fake-refresh-token-0"}
        self.sessions: list[tuple[str, str]] = []  # (username, token), oldest first
        self.logins = 0
        self.logouts = 0
        self.faults: list[Fault] = []
        self.breaks: dict[str, int] = {}  # path → successful calls left before it breaks
        self.delays: dict[str, float] = {}  # path → seconds to wait before answering
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(1000)

    @property
    def api_url(self) -> str:
        return self.base_url + "/api"

    # --- test controls --------------------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, *, times: int = 1,
             retry_after: str | None = None) -> None:  # fmt: skip
        with self.lock:
            self.faults.append(Fault(method, path, status, times, retry_after))

    def break_after(self, path: str, calls: int) -> None:
        """Every call to `path` after `calls` more successful ones fails with 500 until `heal`."""
        with self.lock:
            self.breaks[path] = calls

    def heal(self) -> None:
        with self.lock:
            self.breaks.clear()
            self.faults.clear()

    def expire_tokens(self) -> None:
        with self.lock:
            self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)

    def calls(self, method: str, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [q for m, p, q in self.requests if m == method and p == path]

    # --- data -----------------------------------------------------------------------------------

    def new_id(self) -> int:
        return next(self._ids)

    def add(self, entity: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            now = int(self.clock())
            record = {"created": now, "updated": now, **fields}
            record.setdefault("id", self.new_id())
            record["uri"] = f"{self.api_url}/{entity}/{record['id']}"
            self.entities[entity][int(record["id"])] = record
            return record

    def change(self, entity: str, entity_id: int, **fields: Any) -> dict[str, Any]:
        with self.lock:
            record = self.entities[entity][entity_id]
            record.update(fields)
            record["updated"] = max(int(self.clock()), int(record.get("updated", 0)) + 1)
            return record

    def add_invoice(self, **overrides: Any) -> dict[str, Any]:
        """A valid invoice in the shape Crosswalk's parser reads (docs/source-formats.md)."""
        invoice_id = overrides.pop("id", None) or self.new_id()
        job_id = overrides.pop("job_id", None) or 7000 + invoice_id
        fields = invoice_fields(invoice_id, job_id=job_id, created=int(self.clock()))
        fields.update(overrides)
        if job_id not in self.entities["job"]:
            self.add("job", **fields["job"], status="completed", created=fields["created"])
        return self.add("invoice", **fields)

    def add_clock_event(
        self, *, user_id: int, clock_in: int, clock_out: int | None, job_id: int | None = None,
        activity: str = "onsite", name: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        """A clock event (a clock-in and, once closed, its clock-out; epoch seconds) of a
        technician, on a job when `job_id` is given (the job is created if missing)."""
        fields: dict[str, Any] = {
            "user": {"id": user_id, "name": name or f"Technician {user_id}"},
            "activity": activity, "source": "mobile", "clockIn": clock_in, "clockOut": clock_out,
        }  # fmt: skip
        if job_id is not None:
            if job_id not in self.entities["job"]:
                self.add("job", id=job_id, number=f"J-{job_id}", status="scheduled")
            fields["job"] = {"id": job_id, "number": self.entities["job"][job_id]["number"]}
        return self.add("clock", **fields)

    def add_company(self, *, name: str = "Harbor Foods", **fields: Any) -> dict[str, Any]:
        """A customer company (read shape: `address` object, `phoneNumber`, `email`)."""
        values = {"name": name, "status": "active", "isCustomer": True,
                  "address": {"street": "1 Harbor Way", "city": "Raleigh", "state": "NC",
                              "postalCode": "27601"},
                  "phoneNumber": "919-555-0100", "email": "ap@harbor.example",
                  **fields}  # fmt: skip
        return self.add("company", **values)

    def add_location(
        self, *, company_id: int, name: str = "Harbor Foods #12", **fields: Any
    ) -> dict[str, Any]:
        values = {"name": name, "status": "active", "companyId": company_id,
                  "address": {"street": "12 Main St", "city": "Raleigh", "state": "NC",
                              "postalCode": "27601"},
                  "phoneNumber": "919-555-0112", "email": "store12@harbor.example",
                  "taxable": True, **fields}  # fmt: skip
        return self.add("location", **values)

    def add_contact(
        self, *, first_name: str = "Dana", last_name: str = "Reyes", **fields: Any
    ) -> dict[str, Any]:
        values = {"firstName": first_name, "lastName": last_name,
                  "email": f"{first_name.lower()}@harbor.example", "phone": "919-555-0142",
                  **fields}  # fmt: skip
        return self.add("contact", **values)

    def seed_invoices(self, count: int, *, created_from: int, spacing: int = 60) -> None:
        """`count` invoices created `spacing` seconds apart from `created_from` (fast bulk)."""
        with self.lock:
            for index in range(count):
                invoice_id = 100_000 + index
                created = created_from + index * spacing
                fields = invoice_fields(invoice_id, job_id=500_000 + index, created=created)
                fields["uri"] = f"{self.api_url}/invoice/{invoice_id}"
                self.entities["invoice"][invoice_id] = fields

    # --- serving --------------------------------------------------------------------------------

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        status, headers, body = self._serve(request)
        response = Response(wire.dumps(body) if body is not None else "", status=status,
                            headers=headers, content_type="application/json")  # fmt: skip
        return response(environ, start_response)

    def _serve(self, request: Request) -> tuple[int, dict[str, str], Any]:
        path = request.path.removeprefix("/api")
        with self.lock:
            self.requests.append((request.method, path, dict(request.args.items())))
            fault = self._fault(request.method, path)
        if path in self.delays:
            time.sleep(self.delays[path])
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, headers, _messages(f"Injected {fault.status}.")
        if path == "/oauth2/token" and request.method == "POST":
            return self._token(request)
        if path == "/auth":
            return self._session(request)
        if not self._authenticated(request):
            return 401, {}, _messages("Not authenticated: log in again.")
        with self.lock:
            try:
                return self._route(request, path)
            except _Problem as problem:
                return problem.status, {}, _messages(problem.message, kind=problem.kind)

    def _fault(self, method: str, path: str) -> Fault | None:
        base = "/" + path.strip("/").split("/")[0]
        if path in self.breaks or base in self.breaks:
            key = path if path in self.breaks else base
            if self.breaks[key] <= 0:
                return Fault(method, path, 500, 1)
            self.breaks[key] -= 1
        for fault in self.faults:
            if fault.method == method and fault.path in (path, base) and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    # --- authentication -------------------------------------------------------------------------

    def _token(self, request: Request) -> tuple[int, dict[str, str], Any]:
        form = request.form
        grant = form.get("grant_type")
        ok = False
        with self.lock:
            if grant == "client_credentials":
                ok = (form.get("client_id"), form.get("client_secret")) == (
                    CLIENT_ID,
                    CLIENT_SECRET,
                )
            elif grant == "password":
                ok = form.get("client_id") == CLIENT_ID and (
                    form.get("username"),
                    form.get("password"),
                ) == (USERNAME, PASSWORD)
            elif grant == "refresh_token":
                ok = form.get("refresh_token") in self.refresh_tokens
                if ok and self.rotate_refresh_tokens:
                    self.refresh_tokens.discard(form["refresh_token"])
            if not ok:
                return 401, {}, {"error": "invalid_grant", "error_description": "Bad credentials"}
            self.logins += 1
            expires = self.clock() + self.token_lifetime
            access = _jwt({"sub": USERNAME, "exp": int(expires), "jti": secrets.token_hex(6)})
            self.access_tokens[access] = expires
            body: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                    "expires_in": self.token_lifetime}  # fmt: skip
            if grant != "client_credentials":
                refresh = form.get("refresh_token", "")
                if grant == "password" or self.rotate_refresh_tokens:
                    refresh = "fake-refresh-" + secrets.token_hex(8)
                    self.refresh_tokens.add(refresh)
                    body["refresh_token"] = refresh
        return 200, {}, body

    def _session(self, request: Request) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            if request.method == "POST":
                body = request.get_json(silent=True) or {}
                if (body.get("username"), body.get("password")) != (USERNAME, PASSWORD):
                    return 403, {}, _messages("Invalid username or password.")
                token = secrets.token_hex(16)
                self.sessions.append((USERNAME, token))
                mine = [s for s in self.sessions if s[0] == USERNAME]
                for oldest in mine[: max(len(mine) - self.max_sessions, 0)]:
                    self.sessions.remove(oldest)
                self.logins += 1
                headers = {"Set-Cookie": f"PHPSESSID={token}; Path=/; HttpOnly"}
                return (
                    200,
                    headers,
                    {"data": {"authToken": token, "user": {"id": 1, "username": USERNAME}}},
                )
            if request.method == "DELETE":
                token = request.cookies.get("PHPSESSID", "")
                self.sessions = [s for s in self.sessions if s[1] != token]
                self.logouts += 1
                return 200, {}, {"data": {}}
        return 405, {}, _messages("Method not allowed.")

    def _authenticated(self, request: Request) -> bool:
        with self.lock:
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                expires = self.access_tokens.get(header.removeprefix("Bearer "))
                return expires is not None and expires > self.clock()
            token = request.cookies.get("PHPSESSID")
            return bool(token) and any(s[1] == token for s in self.sessions)

    # --- the API --------------------------------------------------------------------------------

    def _route(self, request: Request, path: str) -> tuple[int, dict[str, str], Any]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise _Problem(404, "Not found.")
        if parts[0] == "externalid":
            return 200, {}, {"data": self._external_id(request, parts[1:])}
        entity = parts[0]
        if entity not in LIST_KEYS:
            raise _Problem(404, f"No resource {entity}.")
        body = _json_body(request) if request.method in ("POST", "PUT") else {}
        if len(parts) == 1 and request.method == "GET":
            return 200, {}, {"data": self._list(entity, request.args)}
        if len(parts) == 1 and request.method == "POST":
            return 200, {}, {"data": self._create(entity, body)}
        record = self.entities[entity].get(_int(parts[1])) if len(parts) == 2 else None
        if record is None:
            raise _Problem(404, f"{entity} {parts[-1]} not found.")
        if request.method == "GET":
            return 200, {}, {"data": copy.deepcopy(record)}
        if request.method == "PUT":
            return 200, {}, {"data": self._update(entity, record, body)}
        if request.method == "DELETE":
            del self.entities[entity][record["id"]]
            return 200, {}, {"data": {}}
        raise _Problem(405, "Method not allowed.")

    def _list(self, entity: str, args: Any) -> dict[str, Any]:
        default, maximum = LIMITS.get(entity, OTHER_LIMIT)
        limit = min(_int(args.get("limit", default)), maximum)
        page = _int(args.get("page", "1"))
        if limit < 1 or page < 1:
            raise _Problem(400, "limit and page must be positive.", kind="validation")
        rows = [r for _, r in sorted(self.entities[entity].items()) if _matches(r, args)]
        total_pages = (len(rows) + limit - 1) // limit
        chunk = rows[(page - 1) * limit : page * limit]
        return {LIST_KEYS[entity]: copy.deepcopy(chunk), "page": page, "totalPages": total_pages,
                "totalCount": len(rows)}  # fmt: skip

    def _create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if entity == "jobitem":
            if not body.get("name"):
                raise _Problem(400, "name is required.", kind="validation")
            job_id = _int(body.get("jobId", 0))
            if job_id not in self.entities["job"]:
                raise _Problem(404, f"job {job_id} not found.")
        if entity == "webhook" and not body.get("hookUrl"):
            raise _Problem(400, "hookUrl is required.", kind="validation")
        if entity == "comment" and not (body.get("entityId") and body.get("content")):
            raise _Problem(400, "entityId and content are required.", kind="validation")
        if entity == "webhook":
            body = {"enabled": True, "confirmed": True, "includeChangesets": False, **body}
        return copy.deepcopy(self.add(entity, **body))

    def _update(self, entity: str, record: dict[str, Any], body: dict[str, Any]) -> Any:
        if entity == "invoice" and "status" in body:
            status = body["status"]
            if status not in INVOICE_STATUSES:
                raise _Problem(400, f"status {status!r} is invalid.", kind="validation")
            if record.get("status") == "void" and status != "void":
                raise _Problem(400, "A void invoice cannot change status.", kind="validation")
        if entity in ("company", "location") and any(n in body for n in _ADDRESS_WRITES):
            address = dict(record.get("address") or {})
            for write, read in _ADDRESS_WRITES.items():
                if write in body:
                    address[read] = body[write]
            body["address"] = address
        return copy.deepcopy(self.change(entity, record["id"], **body))

    def _external_id(self, request: Request, parts: list[str]) -> Any:
        if len(parts) == 3 and not parts[1].isdigit():  # reverse lookup: type/system/value
            for (kind, entity_id), values in self.external_ids.items():
                if kind == parts[0] and values.get(parts[1]) == parts[2]:
                    return {"id": entity_id, "externalIds": dict(values)}
            raise _Problem(404, "No entity with that external id.")
        if len(parts) < 2:
            raise _Problem(404, "Not found.")
        values = self.external_ids.setdefault((parts[0], _int(parts[1])), {})
        if len(parts) == 2:
            return {"values": dict(values)}
        system = parts[2]
        if request.method == "GET":
            if system not in values:
                raise _Problem(404, "No such external id.")
            return {"value": values[system]}
        value = str(_json_body(request).get("value", ""))
        if request.method == "POST" and system in values:
            raise _Problem(409, "The external id exists; PUT changes it.")
        if request.method == "PUT" and value == "":
            values.pop(system, None)
            return {"value": ""}
        values[system] = value
        return {"value": value}

    # --- webhooks -------------------------------------------------------------------------------

    def notify(self, entity: str, entity_id: int, action: str = "updated",
               send: Callable[[str, bytes], int] | None = None) -> list[Delivery]:  # fmt: skip
        """Deliver one event to every enabled webhook that subscribed to its entity type."""
        deliveries = []
        for hook in list(self.entities["webhook"].values()):
            types = {ENTITY_CODES.get(int(e.get("entityType", 0))) for e in
                     hook.get("entityEvents", [])}  # fmt: skip
            if hook.get("enabled") and entity in types:
                deliveries.append(self.deliver(hook["hookUrl"], [(entity, entity_id, action)],
                                               send=send))  # fmt: skip
        return deliveries

    def deliver(
        self,
        url: str,
        events: list[tuple[str, int, str]],
        *,
        send: Callable[[str, bytes], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Delivery:
        """One message, up to three attempts; 2xx–4xx is delivered, otherwise it is dropped."""
        now = int(self.clock())
        body = {"messageId": str(uuid.uuid4()), "timestamp": str(now), "data": [
            {"action": action, "timestamp": now, "userId": 1,
             "entity": {"type": kind, "id": entity_id,
                        "uri": f"{self.api_url}/{kind}/{entity_id}"},
             "changeset": []}
            for kind, entity_id, action in events
        ]}  # fmt: skip
        delivery = Delivery(url=url, body=body)
        sender = send or _post
        for attempt in range(3):
            if attempt:
                sleep(self.webhook_retry_seconds)
            try:
                status = sender(url, json.dumps(body).encode())
            except OSError:
                status = 0  # no answer within the timeout counts as a failure
            delivery.attempts.append(status)
            if 200 <= status < 500:
                break
        self.deliveries.append(delivery)
        return delivery


class _Problem(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _post(url: str, body: bytes) -> int:
    import requests

    answer = requests.post(url, data=body, headers={"Content-Type": "application/json"},
                           timeout=5)  # fmt: skip
    return answer.status_code


def _messages(text: str, *, kind: str = "error") -> dict[str, Any]:
    return {"messages": {kind: [text]}}


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.fake-signature"


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise _Problem(400, f"{str(value)[:40]!r} is not a number.", kind="validation") from None


def _json_body(request: Request) -> dict[str, Any]:
    data = request.get_data()
    body = wire.loads(data) if data else {}
    if not isinstance(body, dict):
        raise _Problem(400, "Expected a JSON object.", kind="validation")
    return body


# Write fields of an address (PUT) → the `address` object it is read back in.
_ADDRESS_WRITES = {"addressStreet": "street", "addressCity": "city", "addressState": "state",
                   "addressPostalCode": "postalCode"}  # fmt: skip
_RANGES = {"updatedAfter": ("updated", 1), "updatedBefore": ("updated", -1),
           "createdAfter": ("created", 1), "createdBefore": ("created", -1)}  # fmt: skip


def _matches(record: dict[str, Any], args: Any) -> bool:
    """Filters as documented: epoch ranges (after: >=, before: <), comma lists, ids."""
    for name, (field_name, sign) in _RANGES.items():
        if name in args:
            bound, value = int(args[name]), int(record.get(field_name, 0))
            if (sign == 1 and value < bound) or (sign == -1 and value >= bound):
                return False
    # Clock events: startTime/endTime bound the clock-in ([start, end)), userId(s) the user.
    clock_in = record.get("clockIn")
    if "startTime" in args and (clock_in is None or int(clock_in) < int(args["startTime"])):
        return False
    if "endTime" in args and (clock_in is None or int(clock_in) >= int(args["endTime"])):
        return False
    users = args.get("userId") or args.get("userIds")
    if users and str((record.get("user") or {}).get("id")) not in users.split(","):
        return False
    statuses = args.get("status", "all")
    if statuses != "all" and str(record.get("status")) not in statuses.split(","):
        return False
    if "jobId" in args:
        job = record.get("job") or {}
        if str(job.get("id", record.get("jobId"))) not in args["jobId"].split(","):
            return False
    roles = record.get("roles") or [record.get("role")]
    return "role" not in args or args["role"] in roles


def invoice_fields(invoice_id: int, *, job_id: int, created: int) -> dict[str, Any]:
    """An invoice as ServiceTrade would list it, with the fields Crosswalk's parser needs."""
    return {
        "id": invoice_id, "invoiceNumber": f"INV-{invoice_id}", "type": "invoice",
        "status": "ok", "transactionDate": created, "partial": False,
        "created": created, "updated": created,
        "customer": {"id": 501, "name": "Harbor Foods"},
        "location": {"id": 9001, "name": "Harbor Foods #12",
                     "address": {"street": "12 Main St", "city": "Raleigh", "state": "NC",
                                 "postalCode": "27601"}},
        "job": {"id": job_id, "number": f"J-{job_id}", "type": "repair",
                "serviceLine": {"id": 1, "name": "HVAC"}},
        "office": {"id": 1, "name": "Raleigh"},
        "items": [
            {"id": 1, "description": "HVAC labor", "itemType": "labor",
             "quantity": Decimal("2.5"), "price": Decimal("110.00"), "taxable": False},
            {"id": 2, "description": "Thermostat", "itemType": "part",
             "quantity": 1, "price": Decimal("129.99"), "taxable": True},
        ],
        "taxRate": Decimal("7.25"),
    }  # fmt: skip


@contextmanager
def served(fake: FakeServiceTrade) -> Iterator[FakeServiceTrade]:
    """Serve `fake` on a free local port in a thread for as long as the block runs."""
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join()


# --- the demo's ServiceTrade --------------------------------------------------------------------

_DEMO: FakeServiceTrade | None = None
_DEMO_LOCK = threading.Lock()
DEMO_INVOICES = 25
DEMO_CLOCK_EVENTS = 3


def demo_fake() -> FakeServiceTrade:
    """One fake ServiceTrade per process, served on a local port, with invoices created over the
    last few hours. Used instead of a connection's base URL and credentials when the setting
    CROSSWALK_SERVICETRADE_FAKE is on (demos without a ServiceTrade account)."""
    global _DEMO
    with _DEMO_LOCK:
        if _DEMO is None:
            fake = FakeServiceTrade()
            server = make_server("127.0.0.1", 0, fake, threaded=True)
            fake.base_url = f"http://127.0.0.1:{server.server_port}"
            threading.Thread(target=server.serve_forever, daemon=True).start()
            start = int(fake.clock()) - DEMO_INVOICES * 600
            for index in range(DEMO_INVOICES):
                fake.clock = lambda index=index: start + index * 600  # type: ignore[misc]
                invoice = fake.add_invoice()
                if index < DEMO_CLOCK_EVENTS:  # a technician clocked on the first few jobs
                    fake.add_clock_event(user_id=300 + index, job_id=invoice["job"]["id"],
                                         clock_in=start + index * 600 - 5400,
                                         clock_out=start + index * 600 - 600)  # fmt: skip
            fake.clock = time.time
            _demo_customer_seed(fake)
            _DEMO = fake
        return _DEMO


def _demo_customer_seed(fake: FakeServiceTrade) -> None:
    """The company and location the demo invoices name, and a contact, so that master data has
    something to read in a demo."""
    named = invoice_fields(0, job_id=0, created=0)
    customer, location = named["customer"], named["location"]
    fake.add_company(id=customer["id"], name=customer["name"])
    fake.add_location(id=location["id"], company_id=customer["id"], name=location["name"])
    fake.add_contact()
