"""A small Business Central for tests: the Entra token endpoint and the API v2.0 pages the
connector uses, served by Werkzeug on a real socket.

It behaves the way the connector must cope with: it checks what Business Central checks (fields
that exist and may be written, required fields, unknown customers and codes, blocked accounts,
dimension values that are not allowed) and answers `{"error": {"code", "message"}}`; a `$batch`
sent with `Isolation: snapshot` is kept whole or rolled back whole; records carry ETags and
updates need a matching If-Match; and faults can be injected: 429 with Retry-After, 5xx,
expired tokens, and a timeout after commit (the change is kept, the answer comes too late).

Faults come one by one (`inject`: the next matching request fails) or at random (`chaos`: every
API request may fail, with seeded probabilities), the way the fault-injection test needs them:
500 and 429 before anything is done, and after a write is committed either a dropped connection
or an answer held back past the caller's timeout.
"""

from __future__ import annotations

import copy
import itertools
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from syncengine.erps import wire

TENANT = "contoso-tenant"
ENVIRONMENT = "sandbox"
COMPANY_ID = "11111111-2222-3333-4444-555555555555"
COMPANY_NAME = "CRONUS USA, Inc."
CLIENT_ID = "crosswalk-app"
CLIENT_SECRET = "fake-secret-value-123"
CENT = Decimal("0.01")
ZERO_QTY = Decimal(0)

# Writable fields per entity set, as Business Central's API v2.0 pages declare them (only the
# fields the fake knows; anything else is refused as unknown or read-only).
WRITABLE = {
    "customers": {
        "number",
        "displayName",
        "type",
        "addressLine1",
        "addressLine2",
        "city",
        "state",
        "country",
        "postalCode",
        "phoneNumber",
        "email",
        "website",
        "taxLiable",
        "taxAreaId",
        "currencyCode",
        "paymentTermsId",
        "blocked",
    },
    "salesInvoices": {
        "externalDocumentNumber",
        "invoiceDate",
        "postingDate",
        "dueDate",
        "customerId",
        "customerNumber",
        "currencyCode",
        "paymentTermsId",
        "customerPurchaseOrderReference",
    },
    "salesCreditMemos": {
        "externalDocumentNumber",
        "creditMemoDate",
        "postingDate",
        "dueDate",
        "customerId",
        "customerNumber",
        "currencyCode",
        "invoiceId",
        "invoiceNumber",
    },
    "salesInvoiceLines": {
        "lineType",
        "lineObjectNumber",
        "accountId",
        "itemId",
        "description",
        "quantity",
        "unitPrice",
        "taxCode",
        "sequence",
    },
    "salesCreditMemoLines": {
        "lineType",
        "lineObjectNumber",
        "accountId",
        "itemId",
        "description",
        "quantity",
        "unitPrice",
        "taxCode",
        "sequence",
    },
    "dimensionSetLines": {"id", "code", "valueId", "valueCode"},
    "defaultDimensions": {
        "parentType",
        "parentId",
        "dimensionId",
        "dimensionValueId",
        "postingValidation",
    },
    "timeRegistrationEntries": {
        "employeeId",
        "employeeNumber",
        "jobId",
        "jobNumber",
        "jobTaskNumber",
        "date",
        "quantity",
    },
    "projects": {"number", "displayName"},
    "vendors": {"number", "displayName", "blocked"},
    "journalLines": {
        "journalId",
        "lineNumber",
        "accountType",
        "accountId",
        "accountNumber",
        "postingDate",
        "documentNumber",
        "externalDocumentNumber",
        "amount",
        "description",
        "comment",
        "balanceAccountType",
        "balancingAccountId",
        "balancingAccountNumber",
    },
    "purchaseInvoices": {
        "vendorInvoiceNumber",
        "invoiceDate",
        "postingDate",
        "dueDate",
        "vendorId",
        "vendorNumber",
        "currencyCode",
    },
    "purchaseInvoiceLines": {
        "lineType",
        "lineObjectNumber",
        "accountId",
        "itemId",
        "description",
        "quantity",
        "unitCost",
        "taxCode",
        "sequence",
    },
    "purchaseOrders": {
        "orderDate",
        "postingDate",
        "vendorId",
        "vendorNumber",
        "currencyCode",
        "shipToContact",
    },
    "purchaseOrderLines": {
        "lineType",
        "lineObjectNumber",
        "accountId",
        "itemId",
        "description",
        "description2",
        "quantity",
        "directUnitCost",
        "taxCode",
        "sequence",
        "receiveQuantity",
        "invoiceQuantity",
    },
    "customerPayments": {
        "journalId",
        "journalDisplayName",
        "lineNumber",
        "customerId",
        "customerNumber",
        "postingDate",
        "documentNumber",
        "externalDocumentNumber",
        "amount",
        "appliesToInvoiceId",
        "appliesToInvoiceNumber",
        "description",
        "comment",
    },
}
READ_ONLY = {
    "salesInvoices": {"id", "number", "status", "totalAmountIncludingTax", "customerName"},
    "salesCreditMemos": {"id", "number", "status", "totalAmountIncludingTax", "customerName"},
    "customers": {"id", "balanceDue", "lastModifiedDateTime"},
    "customerPayments": {"id", "lastModifiedDateTime"},
    "defaultDimensions": {"id", "dimensionCode", "dimensionValueCode", "lastModifiedDateTime"},
}
# A default dimension's "Value Posting", as schema 2.0 spells the enum's names.
POSTING_VALIDATIONS = ("_x0020_", "Code_x0020_Mandatory", "Same_x0020_Code", "No_x0020_Code")
LINE_SETS = {"salesInvoices": "salesInvoiceLines", "salesCreditMemos": "salesCreditMemoLines",
             "purchaseInvoices": "purchaseInvoiceLines",
             "purchaseOrders": "purchaseOrderLines"}  # fmt: skip
# Documents posted by `Microsoft.NAV.post` (an order is received and invoiced by its own action).
POSTABLE = ("salesInvoices", "salesCreditMemos", "purchaseInvoices")
LIST_SETS = (
    "accounts",
    "dimensions",
    "dimensionValues",
    "taxGroups",
    "taxAreas",
    "paymentTerms",
    "employees",
    "customers",
    "items",
    "projects",
    "vendors",
    "journals",
    "generalLedgerEntries",
)


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Fault:
    kind: str  # "429", "500", "503", "timeout_after_commit", "drop_after_commit", "expire_token"
    method: str = ""
    path_contains: str = ""
    times: int = 1
    retry_after: int = 7


# Random fault kinds (`FakeBusinessCentral.chaos`): the first two before anything is done, on
# any request; the last two after a write committed, on writes only.
CHAOS_KINDS = ("error_500", "rate_limit", "drop_after_commit", "timeout_after_commit")


@dataclass
class Sent:
    """One request the fake received (a $batch's operations are logged one by one too)."""

    method: str
    path: str
    entity_set: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    in_batch: bool = False


class FakeBusinessCentral:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.numbers = itertools.count(1001)
        self.tokens: set[str] = set()
        self.faults: list[Fault] = []
        self.sent: list[Sent] = []
        self.token_requests = 0
        self.page_size = 3
        self.commit_delay = 0.0  # seconds a timeout_after_commit answer is held back
        self.base_url = ""
        # What lastModifiedDateTime says on a payment line written now (tests may move it).
        self.clock: Any = lambda: datetime.now(UTC)
        self.chaos_odds: dict[str, float] = {}
        self.chaos_random = random.Random(0)
        self.chaos_retry_after = 1
        self.faults_fired: Counter[str] = Counter()
        # The company's currency: documents sent without a currency code are in it, and read
        # back with this code.
        self.local_currency = "USD"

    # --- set-up helpers -------------------------------------------------------------------------

    company_name = COMPANY_NAME
    client_secret = CLIENT_SECRET

    def seed_demo_books(self) -> None:
        _seed_demo_books(self)

    def connection(self, *, slug: str = "bc", **settings: Any) -> Any:
        """A saved Business Central connection pointing here, its client id and secret set."""
        return _bc_connection(self, slug=slug, **settings)

    def publish_demo_rules(self, connection: Any, *, now: datetime) -> Any:
        """The connection with its catalog read from here and the demo's rules published."""
        return _publish_demo_rules(connection, now=now)

    def add(self, entity_set: str, **values: Any) -> dict[str, Any]:
        with self.lock:
            record = {"id": str(uuid.uuid4()), **values}
            self._stamp(record)
            self.tables.setdefault(entity_set, {})[record["id"]] = record
            return record

    def add_payment(self, invoice: dict[str, Any], amount: str, **values: Any) -> dict[str, Any]:
        """A customer payment journal line applied to `invoice`, as a cashier would enter it:
        the amount as Business Central holds it (negative = a payment received)."""
        with self.lock:
            body = {"appliesToInvoiceId": invoice["id"], "amount": Decimal(amount),
                    "postingDate": "2026-11-20", **values}  # fmt: skip
            return self._create("customerPayments", body, parent=None, path="customerPayments")

    def add_purchase_order(
        self, *, number: str, lines: list[dict[str, Any]], **values: Any
    ) -> dict[str, Any]:
        """A purchase order (read-only for Crosswalk) and its `purchaseOrderLines` (each with
        description, quantity, directUnitCost); `lastModifiedDateTime` is the fake's clock."""
        with self.lock:
            order = self.add("purchaseOrders", number=number, status="Open",
                             lastModifiedDateTime=_stamp_time(self.clock()), **values)  # fmt: skip
            for sequence, line in enumerate(lines, start=1):
                self.add("purchaseOrderLines", _parent=order["id"], documentId=order["id"],
                         sequence=sequence * 10000, lineType="Item", **line)  # fmt: skip
            return order

    def add_dimension(self, code: str, values: dict[str, str]) -> None:
        dimension = self.add("dimensions", code=code, displayName=code.title())
        for value, name in values.items():
            self.add(
                "dimensionValues",
                code=value,
                displayName=name,
                dimensionId=dimension["id"],
                blocked=False,
                _parent=dimension["id"],  # also read as dimensions(<id>)/dimensionValues
            )

    def change(self, entity_set: str, where: dict[str, Any], **values: Any) -> dict[str, Any]:
        """Change one record as a user of Business Central would: a new version is stamped."""
        with self.lock:
            [record] = self.rows(entity_set, **where)
            record.update(values)
            self._stamp(record)
            return record

    def remove(self, entity_set: str, **where: Any) -> None:
        """Delete records as a user of Business Central would (nothing is left to read)."""
        with self.lock:
            for record in self.rows(entity_set, **where):
                del self.tables[entity_set][record["id"]]

    def rows(self, entity_set: str, **where: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [
                row
                for row in self.tables.get(entity_set, {}).values()
                if all(row.get(name) == value for name, value in where.items())
            ]

    def inject(
        self,
        kind: str,
        *,
        method: str = "",
        path_contains: str = "",
        times: int = 1,
        retry_after: int = 7,
    ) -> None:
        with self.lock:
            self.faults.append(Fault(kind, method, path_contains, times, retry_after))

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def chaos(self, *, seed: int, retry_after: int = 1, **odds: float) -> None:
        """Fail API requests at random from now on (token requests never): each kind of
        CHAOS_KINDS with its probability per request, e.g. `chaos(seed=1, error_500=0.05)`.
        `commit_delay` must exceed the caller's timeout for timeout_after_commit to time out.
        No odds: stop. What fired is counted in `faults_fired`."""
        unknown = set(odds) - set(CHAOS_KINDS)
        if unknown or sum(odds.values()) > 1:
            raise ValueError(f"Unknown fault kinds {sorted(unknown)} or odds above 1: {odds}")
        with self.lock:
            self.chaos_odds = dict(odds)
            self.chaos_random = random.Random(seed)
            self.chaos_retry_after = retry_after

    def _chaos_roll(self, method: str) -> str:
        """The random fault this request meets, if any ("" for none)."""
        if not self.chaos_odds:
            return ""
        roll, threshold = self.chaos_random.random(), 0.0
        for kind in CHAOS_KINDS:
            threshold += self.chaos_odds.get(kind, 0.0)
            if roll < threshold:
                if kind.endswith("_after_commit") and method == "GET":
                    return ""  # nothing to commit: a read goes through
                return kind
        return ""

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        delay = 0.0
        with self.lock:
            status, headers, body, delay = self._serve(request)
            drop = headers.pop("X-Fake-Drop", "")
        if drop:
            # Committed already: the connection goes before the answer does.
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("the fake dropped the connection after committing")
        if delay:
            time.sleep(delay)  # committed already: the caller's timeout runs out first
        payload = wire.dumps(body) if body is not None else ""
        response = Response(
            payload, status=status, headers=headers, content_type="application/json"
        )
        return response(environ, start_response)

    def _serve(self, request: Request) -> tuple[int, dict[str, str], Any, float]:
        path = request.path
        if path == f"/{TENANT}/oauth2/v2.0/token":
            status, body = self._token(request)
            return status, {}, body, 0.0
        fault = self._fault(request.method, path)
        chaos = self._chaos_roll(request.method)
        if chaos:
            self.faults_fired[chaos] += 1
            kind = {"error_500": "500", "rate_limit": "429"}.get(chaos, chaos)
            fault = Fault(kind, retry_after=self.chaos_retry_after)
        if fault is not None and fault.kind in ("429", "500", "503"):
            code = {
                "429": "TooManyRequests",
                "500": "Internal_ServerError",
                "503": "ServiceUnavailable",
            }[fault.kind]
            headers = {"Retry-After": str(fault.retry_after)} if fault.kind != "500" else {}
            return int(fault.kind), headers, _error(code, "Injected by the test."), 0.0
        if fault is not None and fault.kind == "expire_token":
            self.tokens.clear()
        authorization = request.headers.get("Authorization", "")
        if authorization.removeprefix("Bearer ") not in self.tokens:
            return 401, {}, _error("Authentication_InvalidCredentials", "The token expired."), 0.0
        prefix = f"/v2.0/{TENANT}/{ENVIRONMENT}/api/v2.0/"
        if not path.startswith(prefix):
            return 404, {}, _error("BadRequest_ResourceNotFound", "No such environment."), 0.0
        relative = path.removeprefix(prefix)
        body = wire.loads(request.get_data()) if request.get_data() else None
        query = {
            name: values[0] for name, values in parse_qs(request.query_string.decode()).items()
        }
        if relative == "$batch":
            self.sent.append(Sent("POST", "$batch", "$batch", None, dict(request.headers)))
            status, answer = self._batch(body or {}, request.headers.get("Isolation", ""))
        else:
            self.sent.append(
                Sent(request.method, relative, _entity_set(relative), body, dict(request.headers))
            )
            status, answer = self._handle(
                request.method, relative, query, body, request.headers.get("If-Match", "")
            )
            if isinstance(answer, dict):
                answer.pop("@fake.path", None)
        late = fault is not None and fault.kind == "timeout_after_commit"
        delay = self.commit_delay if late else 0.0
        dropped = chaos == "drop_after_commit" or (
            fault is not None and fault.kind == "drop_after_commit"
        )
        return status, {"X-Fake-Drop": "yes"} if dropped else {}, answer, delay

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (
                fault.times > 0
                and (not fault.method or fault.method == method)
                and (fault.path_contains in path)
            ):
                fault.times -= 1
                return fault
        return None

    def _token(self, request: Request) -> tuple[int, Any]:
        self.token_requests += 1
        form = request.form
        if form.get("grant_type") != "client_credentials" or not form.get("scope", "").endswith(
            "/.default"
        ):
            return 400, {"error": "invalid_request", "error_description": "Bad grant."}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {
                "error": "invalid_client",
                "error_description": f"Bad secret for {form.get('client_id')}.",
            }
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3599}

    # --- $batch ---------------------------------------------------------------------------------

    def _batch(self, body: dict[str, Any], isolation: str) -> tuple[int, Any]:
        operations = body.get("requests", [])
        if len(operations) > 100:
            return 400, _error("BadRequest", "A batch holds at most 100 operations.")
        saved = copy.deepcopy(self.tables)
        created: dict[str, str] = {}
        responses = []
        failed = False
        for operation in operations:
            op_id = str(operation.get("id"))
            if failed:
                responses.append(
                    {
                        "id": op_id,
                        "status": 424,
                        "body": _error("BadRequest", "Not run: an earlier operation failed."),
                    }
                )
                continue
            url = operation.get("url", "")
            reference = re.match(r"^\$(\w+)(/.*)?$", url)
            if reference:
                url = created.get(reference.group(1), "$unknown") + (reference.group(2) or "")
            url, _, query_text = url.partition("?")
            query = {name: values[0] for name, values in parse_qs(query_text).items()}
            self.sent.append(
                Sent(
                    operation.get("method", ""),
                    url,
                    _entity_set(url),
                    operation.get("body"),
                    operation.get("headers") or {},
                    True,
                )
            )
            status, answer = self._handle(
                operation.get("method", ""), url, query, operation.get("body"), ""
            )
            if status == 201 and isinstance(answer, dict):
                created[op_id] = answer.pop("@fake.path")
            responses.append({"id": op_id, "status": status, "headers": {}, "body": answer})
            if status >= 400:
                failed = True
        if failed and isolation.lower() == "snapshot":
            self.tables = saved  # all or nothing
        return 200, {"responses": responses}

    # --- one request ----------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, query: dict[str, str], body: Any, if_match: str
    ) -> tuple[int, Any]:
        try:
            return self._route(method, path, query, body, if_match)
        except Refused as refused:
            return refused.status, _error(refused.code, refused.message)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, if_match: str
    ) -> tuple[int, Any]:
        segments = [_segment(part) for part in path.strip("/").split("/")]
        if segments[0][0] != "companies":
            raise Refused(404, "BadRequest_ResourceNotFound", f"Unknown segment {segments[0][0]}.")
        company = segments[0][1]
        if company is None:
            rows = [{"id": COMPANY_ID, "name": COMPANY_NAME, "displayName": COMPANY_NAME}]
            return 200, {"value": _filtered(rows, query.get("$filter", ""))}
        if company != COMPANY_ID:
            raise Refused(404, "Internal_CompanyNotFound", "The company does not exist.")
        if len(segments) == 1:
            return 200, {"id": COMPANY_ID, "name": COMPANY_NAME, "displayName": COMPANY_NAME}
        entity_set, key = segments[1]
        if len(segments) == 2 and key is None:
            if method == "GET":
                return 200, self._list(entity_set, query, path)
            if method == "POST":
                return 201, self._create(entity_set, body or {}, parent=None, path=path)
        record = self._get(entity_set, key)
        if len(segments) == 2:
            if method == "GET":
                return 200, self._show(entity_set, record, query.get("$expand", ""))
            if method == "PATCH":
                return 200, self._update(entity_set, record, body or {}, if_match)
        rest = segments[2:]
        if rest == [("Microsoft.NAV.post", None)] and method == "POST":
            self._post_document(entity_set, record)
            return 204, None
        if rest == [("Microsoft.NAV.receiveAndInvoice", None)] and method == "POST":
            if entity_set != "purchaseOrders":
                raise Refused(400, "BadRequest_MethodNotImplemented", "No such action.")
            self._receive_and_invoice(record)
            return 204, None
        if len(rest) == 1 and rest[0][1] is not None and method in ("GET", "PATCH"):
            line = self._get(rest[0][0], rest[0][1])
            if line.get("_parent") != record["id"]:
                raise Refused(404, "Internal_RecordNotFound", f"No such {rest[0][0]} here.")
            if method == "GET":
                return 200, _public(line)
            return 200, self._update(rest[0][0], line, body or {}, if_match)
        if len(rest) == 1 and rest[0][1] is None and method == "GET":
            rows = _filtered(self._children(rest[0][0], record["id"]), query.get("$filter", ""))
            return 200, {"value": [_public(row) for row in rows]}
        if len(rest) == 1 and rest[0][1] is None and method == "POST":
            return 201, self._create(rest[0][0], body or {}, parent=(entity_set, record), path=path)
        if len(rest) == 2 and rest[1][0] == "dimensionSetLines" and method == "POST":
            line = self._get(rest[0][0], rest[0][1])
            return 201, self._create(
                "dimensionSetLines", body or {}, parent=(rest[0][0], line), path=path
            )
        raise Refused(405, "BadRequest_MethodNotAllowed", f"{method} is not allowed on {path}.")

    def _get(self, entity_set: str, key: str | None) -> dict[str, Any]:
        record = self.tables.get(entity_set, {}).get(key or "")
        if record is None:
            raise Refused(404, "Internal_RecordNotFound", f"No {entity_set} record {key}.")
        return record

    def _list(self, entity_set: str, query: dict[str, str], path: str) -> dict[str, Any]:
        if entity_set not in (
            *LIST_SETS,
            "salesInvoices",
            "salesCreditMemos",
            "timeRegistrationEntries",
            "customerPayments",
            "purchaseInvoices",
            "purchaseOrders",
            "purchaseReceipts",
        ):
            raise Refused(404, "BadRequest_ResourceNotFound", f"No entity set {entity_set}.")
        rows = _filtered(list(self.tables.get(entity_set, {}).values()), query.get("$filter", ""))
        skip = int(query.get("$skiptoken", "0"))
        expand = query.get("$expand", "")
        page = [self._show(entity_set, row, expand) for row in rows[skip : skip + self.page_size]]
        answer: dict[str, Any] = {"value": page}
        if skip + self.page_size < len(rows):
            rest = {name: value for name, value in query.items() if name != "$skiptoken"}
            rest["$skiptoken"] = str(skip + self.page_size)
            answer["@odata.nextLink"] = (
                f"{self.base_url}/v2.0/{TENANT}/{ENVIRONMENT}/api/v2.0/{path}?{urlencode(rest)}"
            )
        return answer

    def _show(self, entity_set: str, record: dict[str, Any], expand: str) -> dict[str, Any]:
        shown = {name: value for name, value in record.items() if not name.startswith("_")}
        if entity_set in LINE_SETS and "Lines" in expand:
            lines = self._children(LINE_SETS[entity_set], record["id"])
            with_dimensions = "dimensionSetLines" in expand
            shown[LINE_SETS[entity_set]] = [
                {
                    **_public(line),
                    **(
                        {
                            "dimensionSetLines": [
                                _public(d) for d in self._children("dimensionSetLines", line["id"])
                            ]
                        }
                        if with_dimensions
                        else {}
                    ),
                }
                for line in lines
            ]
        return shown

    def _children(self, entity_set: str, parent_id: str) -> list[dict[str, Any]]:
        return [
            row
            for row in self.tables.get(entity_set, {}).values()
            if row.get("_parent") == parent_id
        ]

    # --- writes ---------------------------------------------------------------------------------

    def _check_fields(self, entity_set: str, body: dict[str, Any]) -> None:
        writable = WRITABLE.get(entity_set)
        if writable is None:
            raise Refused(405, "BadRequest_MethodNotAllowed", f"{entity_set} is read-only.")
        for name in body:
            if name in READ_ONLY.get(entity_set, set()):
                raise Refused(
                    400, "BadRequest_InvalidOperation", f"The property '{name}' is read-only."
                )
            if name not in writable:
                raise Refused(
                    400,
                    "BadRequest",
                    f"The property '{name}' does not exist on type '{entity_set}'.",
                )

    def _create(
        self,
        entity_set: str,
        body: dict[str, Any],
        *,
        parent: tuple[str, dict[str, Any]] | None,
        path: str,
    ) -> dict[str, Any]:
        self._check_fields(entity_set, body)
        record = getattr(self, f"_new_{entity_set}")(body, parent)
        record.setdefault("id", str(uuid.uuid4()))
        if parent is not None:
            record["_parent"] = parent[1]["id"]
        self._stamp(record)
        # Dimension set lines share ids (the dimension's): each is stored under a key of its own.
        key = record["id"] if entity_set != "dimensionSetLines" else str(uuid.uuid4())
        self.tables.setdefault(entity_set, {})[key] = record
        if parent is not None and parent[0] in LINE_SETS:
            self._total(parent[0], parent[1])
        return {**_public(record), "@fake.path": f"{path}({record['id']})"}

    def _update(
        self, entity_set: str, record: dict[str, Any], body: dict[str, Any], if_match: str
    ) -> dict[str, Any]:
        if not if_match:
            raise Refused(
                400,
                "BadRequest_InvalidToken",
                "Could not validate the client concurrency token required by the service.",
            )
        if if_match not in ("*", record["@odata.etag"]):
            raise Refused(
                409, "Request_EntityChanged", "Another user has already changed the record."
            )
        self._check_fields(entity_set, body)
        if entity_set == "purchaseOrderLines":
            self._update_order_line(record, body)
        else:
            record.update(body)
        if "lastModifiedDateTime" in record:
            record["lastModifiedDateTime"] = _stamp_time(self.clock())
        self._stamp(record)
        return _public(record)

    def _new_customerPayments(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        _required(body, "postingDate")
        record = dict(body)
        invoice_id, number = body.get("appliesToInvoiceId"), body.get("appliesToInvoiceNumber")
        if invoice_id or number:
            where = {"id": invoice_id} if invoice_id else {"number": number}
            invoices = self.rows("salesInvoices", **where)
            if not invoices or invoices[0]["status"] == "Draft":
                raise Refused(400, "Application_DialogException",
                              f"There is no posted invoice {invoice_id or number}.")  # fmt: skip
            record.update(appliesToInvoiceId=invoices[0]["id"],
                          appliesToInvoiceNumber=invoices[0]["number"])  # fmt: skip
        record["amount"] = Decimal(str(body.get("amount", "0")))
        record["lastModifiedDateTime"] = _stamp_time(self.clock())
        return record

    def _new_customers(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:
        _required(body, "displayName")
        number = body.get("number") or f"C{next(self.numbers)}"
        if self.rows("customers", number=number):
            raise Refused(
                400,
                "Internal_EntityWithSameKeyExists",
                f"The record in table Customer already exists. No.='{number}'.",
            )
        _length(body, "number", 20)
        _length(body, "displayName", 100)
        return {"blocked": " ", **body, "number": number}

    def _new_vendors(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:
        _required(body, "displayName")
        number = body.get("number") or f"V{next(self.numbers)}"
        if self.rows("vendors", number=number):
            message = f"The record in table Vendor already exists. No.='{number}'."
            raise Refused(400, "Internal_EntityWithSameKeyExists", message)
        _length(body, "number", 20)
        return {"blocked": " ", **body, "number": number}

    def _new_journalLines(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        if parent is None or parent[0] != "journals":
            raise Refused(400, "BadRequest", "Journal lines are created inside a journal.")
        for name in ("accountType", "balanceAccountType"):
            if body.get(name, "G/L Account") not in ("G/L Account", "Bank Account"):
                message = f"{name} {body[name]!r}: only G/L Account and Bank Account."
                raise Refused(400, "Application_EvaluateException", message)
        _required(body, "accountNumber")
        self._postable_account(body["accountNumber"])
        if body.get("balancingAccountNumber"):
            self._postable_account(body["balancingAccountNumber"])
        _length(body, "documentNumber", 20)
        _length(body, "externalDocumentNumber", 35)
        return {**body, "journalId": parent[1]["id"], "amount": Decimal(str(body["amount"]))}

    def _new_purchaseInvoices(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        if body.get("vendorId"):
            vendor = self._get("vendors", body["vendorId"])
        else:
            found = self.rows("vendors", number=body.get("vendorNumber"))
            if not found:
                message = f"The Vendor does not exist. No.='{body.get('vendorNumber')}'"
                raise Refused(400, "Internal_RecordNotFound", message)
            vendor = found[0]
        _length(body, "vendorInvoiceNumber", 35)
        return {
            **body, "number": f"P-INV{next(self.numbers)}", "status": "Draft",
            "vendorId": vendor["id"], "vendorNumber": vendor["number"],
            "vendorName": vendor.get("displayName", ""), "currencyCode": "USD",
            "totalAmountExcludingTax": Decimal("0.00"), "totalAmountIncludingTax": Decimal("0.00"),
        }  # fmt: skip

    def _new_purchaseOrders(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        if not (body.get("vendorId") or body.get("vendorNumber")):
            raise Refused(400, "Application_DialogException",
                          'A "vendorNumber" or a "vendorId" must be provided.')  # fmt: skip
        if body.get("vendorId"):
            vendor = self._get("vendors", body["vendorId"])
        else:
            found = self.rows("vendors", number=body["vendorNumber"])
            if not found:
                raise Refused(400, "Application_DialogException",
                              "The buy-from vendor cannot be found.")  # fmt: skip
            vendor = found[0]
        if vendor.get("blocked") not in (" ", "_x0020_", "", None):
            raise Refused(400, "Application_DialogException",
                          f"Vendor {vendor['number']} is blocked.")  # fmt: skip
        return {
            **body, "number": f"PO{next(self.numbers)}", "status": "Draft",
            "vendorId": vendor["id"], "vendorNumber": vendor["number"],
            "vendorName": vendor.get("displayName", ""),
            "currencyCode": body.get("currencyCode") or self.local_currency,
            "totalAmountExcludingTax": Decimal("0.00"), "totalAmountIncludingTax": Decimal("0.00"),
        }  # fmt: skip

    def _new_purchaseOrderLines(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        if parent is None or parent[0] != "purchaseOrders":
            raise Refused(400, "BadRequest", "Order lines are created inside an order.")
        _length(body, "description2", 50)
        for name in ("receiveQuantity", "invoiceQuantity"):
            if name in body:
                raise Refused(400, "Application_DialogException",
                              f"{name} is set once the line exists.")  # fmt: skip
        cost = body.get("directUnitCost", 0)
        line = self._new_line({**{k: v for k, v in body.items() if k != "directUnitCost"},
                               "unitPrice": cost}, parent)  # fmt: skip
        line["directUnitCost"] = line.pop("unitPrice")
        siblings = self._children("purchaseOrderLines", parent[1]["id"])
        quantity = line["quantity"]
        # What Business Central fills in: nothing received or invoiced yet, and the whole
        # quantity to receive and to invoice by default.
        return {**line, "sequence": (len(siblings) + 1) * 10000, "receivedQuantity": ZERO_QTY,
                "invoicedQuantity": ZERO_QTY, "receiveQuantity": quantity,
                "invoiceQuantity": quantity}  # fmt: skip

    def _update_order_line(self, line: dict[str, Any], body: dict[str, Any]) -> None:
        """Fields are validated in the page's order, as Business Central does: invoiceQuantity
        before receiveQuantity; validating receiveQuantity sets invoiceQuantity to all that can
        be invoiced (received + to receive − invoiced)."""
        order = self._get("purchaseOrders", line["_parent"])
        if order["status"] != "Draft":
            raise Refused(400, "Application_DialogException",
                          f"Status must be equal to 'Open' in Purchase Header: "
                          f"No.={order['number']}")  # fmt: skip
        rest = {k: v for k, v in body.items() if k not in ("invoiceQuantity", "receiveQuantity")}
        line.update(rest)
        if "invoiceQuantity" in body:
            wanted = Decimal(str(body["invoiceQuantity"]))
            most = line["receivedQuantity"] + line["receiveQuantity"] - line["invoicedQuantity"]
            if not ZERO_QTY <= wanted <= most:
                raise Refused(400, "Application_FieldValidationException",
                              f"You cannot invoice more than {most} units.")  # fmt: skip
            line["invoiceQuantity"] = wanted
        if "receiveQuantity" in body:
            wanted = Decimal(str(body["receiveQuantity"]))
            outstanding = line["quantity"] - line["receivedQuantity"]
            if not ZERO_QTY <= wanted <= outstanding:
                raise Refused(400, "Application_FieldValidationException",
                              f"You cannot receive more than {outstanding} units.")  # fmt: skip
            line["receiveQuantity"] = wanted
            line["invoiceQuantity"] = (line["receivedQuantity"] + wanted
                                       - line["invoicedQuantity"])  # fmt: skip

    def _receive_and_invoice(self, order: dict[str, Any]) -> None:
        """Post what the lines say: receive each line's receiveQuantity, invoice its
        invoiceQuantity. A receipt alone when nothing is to be invoiced (Purch.-Post only
        invoices when a line has a quantity to invoice); an order invoiced in full is deleted."""
        lines = sorted(self._children("purchaseOrderLines", order["id"]),
                       key=lambda line: line["sequence"])  # fmt: skip
        receive = any(line["receiveQuantity"] for line in lines)
        invoice = any(line["invoiceQuantity"] for line in lines)
        if not (receive or invoice):
            raise Refused(400, "Application_DialogException", "There is nothing to post.")
        for line in lines:
            if line["invoicedQuantity"] + line["invoiceQuantity"] > (
                line["receivedQuantity"] + line["receiveQuantity"]
            ):
                raise Refused(400, "Application_DialogException",
                              f"You cannot invoice order {order['number']} for more than you "
                              "have received.")  # fmt: skip
        if receive:
            self.add("purchaseReceipts", number=f"P-RCPT{next(self.numbers)}",
                     orderNumber=order["number"], postingDate=order.get("postingDate", ""),
                     lines=[(line["sequence"], line["receiveQuantity"]) for line in lines
                            if line["receiveQuantity"]])  # fmt: skip
        invoiced = Decimal("0.00")
        for line in lines:
            invoiced += (line["invoiceQuantity"] * line["directUnitCost"]).quantize(
                CENT, rounding=ROUND_HALF_UP
            )
            line["receivedQuantity"] += line["receiveQuantity"]
            line["invoicedQuantity"] += line["invoiceQuantity"]
            line["receiveQuantity"] = line["quantity"] - line["receivedQuantity"]
            line["invoiceQuantity"] = (
                line["receivedQuantity"] + line["receiveQuantity"] - line["invoicedQuantity"]
            )
            self._stamp(line)
        if invoice:
            self.add("purchaseInvoices", number=f"PP-INV{next(self.numbers)}", status="Open",
                     vendorNumber=order["vendorNumber"], orderNumber=order["number"],
                     totalAmountIncludingTax=invoiced)  # fmt: skip
        if all(line["invoicedQuantity"] == line["quantity"] for line in lines):
            for line in lines:
                del self.tables["purchaseOrderLines"][line["id"]]
            del self.tables["purchaseOrders"][order["id"]]
            return
        self._stamp(order)

    def _new_purchaseInvoiceLines(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        cost = body.get("unitCost", 0)
        line = self._new_line({**{k: v for k, v in body.items() if k != "unitCost"},
                               "unitPrice": cost}, parent)  # fmt: skip
        line["unitCost"] = line.pop("unitPrice")
        return line

    def _new_projects(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:
        _required(body, "number")
        if self.rows("projects", number=body["number"]):
            raise Refused(400, "Internal_EntityWithSameKeyExists", "The project already exists.")
        return dict(body)

    def _customer(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("customerId"):
            return self._get("customers", body["customerId"])
        if not body.get("customerNumber"):
            raise Refused(
                400,
                "Application_DialogException",
                "You must specify a customer id or a customer number.",
            )
        found = self.rows("customers", number=body["customerNumber"])
        if not found:
            raise Refused(
                400,
                "Internal_RecordNotFound",
                "The Customer does not exist. "
                f"Identification fields and values: No.='{body['customerNumber']}'",
            )
        if found[0].get("blocked") not in (" ", "_x0020_", "", None):
            raise Refused(
                400, "Application_DialogException", f"Customer {body['customerNumber']} is blocked."
            )
        return found[0]

    def _new_document(self, body: dict[str, Any], prefix: str) -> dict[str, Any]:
        customer = self._customer(body)
        _length(body, "externalDocumentNumber", 35)
        currency = body.get("currencyCode") or self.local_currency
        if currency != self.local_currency and not self.rows("currencies", code=currency):
            raise Refused(
                400, "Internal_InvalidTableRelation", "The field Currency Code of table Sales "
                f"Header contains a value ({currency}) that cannot be found in the related table "
                "(Currency).",
            )  # fmt: skip
        return {
            **body,
            "number": f"{prefix}{next(self.numbers)}",
            "status": "Draft",
            "customerId": customer["id"],
            "customerNumber": customer["number"],
            "customerName": customer.get("displayName", ""),
            "currencyCode": currency,  # the local currency's code when none was given
            "totalAmountExcludingTax": Decimal("0.00"),
            "totalTaxAmount": Decimal("0.00"),
            "totalAmountIncludingTax": Decimal("0.00"),
        }

    def _new_salesInvoices(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        return {**self._new_document(body, "S-INV"), "remainingAmount": Decimal("0.00")}

    def _new_salesCreditMemos(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        record = self._new_document(body, "S-CR")
        if body.get("invoiceId"):
            invoice = self._get("salesInvoices", body["invoiceId"])
            if invoice["status"] not in ("Open", "Paid"):
                raise Refused(
                    400,
                    "Application_DialogException",
                    f"Invoice {invoice['number']} is not posted; nothing to apply to.",
                )
            if invoice["customerId"] != record["customerId"]:
                raise Refused(
                    400, "Application_DialogException", "The invoice is another customer's."
                )
            if invoice["currencyCode"] != record["currencyCode"]:
                raise Refused(400, "Application_DialogException", f"Currency Code must be equal "
                              f"to '{invoice['currencyCode']}' to apply the credit memo to "
                              f"invoice {invoice['number']}.")  # fmt: skip
            record["invoiceNumber"] = invoice["number"]
        return record

    def _new_line(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:
        document = parent[1]
        if document["status"] != "Draft":
            raise Refused(
                400,
                "Application_DialogException",
                f"Status must be equal to 'Open' in Sales Header: No.={document['number']}",
            )
        _required(body, "lineType")
        _length(body, "description", 100)
        if body["lineType"] == "Account":
            _required(body, "lineObjectNumber")
            self._postable_account(body["lineObjectNumber"])
        elif body["lineType"] != "Comment":
            raise Refused(
                400,
                "Application_EvaluateException",
                f"'{body['lineType']}' is not an option the fake knows.",
            )
        quantity = Decimal(str(body.get("quantity", 0)))
        price = Decimal(str(body.get("unitPrice", 0)))
        amount = (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP)
        return {
            **body,
            "documentId": document["id"],
            "quantity": quantity,
            "unitPrice": price,
            "amountExcludingTax": amount,
            "amountIncludingTax": amount,
            "netAmount": amount,
        }

    _new_salesInvoiceLines = _new_line  # noqa: N815
    _new_salesCreditMemoLines = _new_line  # noqa: N815

    def _postable_account(self, number: str) -> None:
        found = self.rows("accounts", number=number)
        if not found:
            raise Refused(
                400,
                "Internal_InvalidTableRelation",
                f"The field No. of table Sales "
                f"Line contains a value ({number}) that cannot be found in the related "
                "table (G/L Account).",
            )
        if found[0].get("blocked"):
            raise Refused(
                400,
                "Application_FieldValidationException",
                "Blocked must be equal to "
                f"'No' in G/L Account: No.={number}. Current value is 'Yes'.",
            )
        if found[0].get("accountType", "Posting") != "Posting":
            raise Refused(
                400,
                "Application_FieldValidationException",
                f"Account Type must be equal to 'Posting' in G/L Account: No.={number}.",
            )

    def _new_dimensionSetLines(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        _required(body, "code")
        dimension = self.rows("dimensions", code=body["code"])
        if not dimension:
            raise Refused(
                400,
                "Internal_InvalidTableRelation",
                f"The dimension {body['code']} does not exist.",
            )
        value = self.rows(
            "dimensionValues", dimensionId=dimension[0]["id"], code=body.get("valueCode")
        )
        if not value:
            raise Refused(
                400,
                "Internal_InvalidTableRelation",
                f"Dimension value {body['code']} {body.get('valueCode')} does not exist.",
            )
        if value[0].get("blocked"):
            raise Refused(
                400,
                "Application_DialogException",
                f"Dimension value {body['code']} {body['valueCode']} is blocked and not allowed.",
            )
        siblings = self._children("dimensionSetLines", parent[1]["id"])
        if any(row["code"] == body["code"] for row in siblings):
            raise Refused(
                400, "Internal_EntityWithSameKeyExists", f"Dimension {body['code']} is already set."
            )
        return {
            "code": body["code"],
            "valueCode": body["valueCode"],
            "id": dimension[0]["id"],
            "valueId": value[0]["id"],
            "parentId": parent[1]["id"],
        }

    def _new_defaultDimensions(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        if parent is None or parent[0] not in ("customers", "vendors", "items", "employees"):
            raise Refused(400, "BadRequest", "Default dimensions belong to a customer, vendor, "
                          "item or employee.")  # fmt: skip
        owner = parent[1]
        if body.get("parentId") not in (None, owner["id"]):
            raise Refused(400, "BadRequest", "parentId is not the record the URL names.")
        _required(body, "dimensionId")
        dimension = self.tables.get("dimensions", {}).get(body["dimensionId"])
        if dimension is None:
            raise Refused(400, "Internal_RecordNotFound", f"No dimension {body['dimensionId']}.")
        posting = body.get("postingValidation", "_x0020_")
        if posting not in POSTING_VALIDATIONS:
            raise Refused(400, "BadRequest", f"'{posting}' is not a value of postingValidation.")
        value: dict[str, Any] = {}
        if body.get("dimensionValueId"):
            value = self.tables.get("dimensionValues", {}).get(body["dimensionValueId"]) or {}
            if value.get("dimensionId") != dimension["id"]:
                raise Refused(400, "Internal_RecordNotFound", f"No {dimension['code']} value "
                              f"{body['dimensionValueId']}.")  # fmt: skip
            if value.get("blocked"):
                raise Refused(400, "Application_DialogException", f"Dimension value "
                              f"{dimension['code']} {value['code']} is blocked.")  # fmt: skip
        if posting == "No_x0020_Code" and value:
            raise Refused(400, "Application_DialogException", "Dimension Value Code must be "
                          "blank when Value Posting is No Code.")  # fmt: skip
        if posting == "Same_x0020_Code" and not value:
            raise Refused(400, "Application_DialogException", "Dimension Value Code must have a "
                          "value when Value Posting is Same Code.")  # fmt: skip
        if any(row["dimensionId"] == dimension["id"]
               for row in self._children("defaultDimensions", owner["id"])):  # fmt: skip
            raise Refused(400, "Internal_EntityWithSameKeyExists", f"{dimension['code']} is "
                          f"already a default dimension of {owner.get('number')}.")  # fmt: skip
        return {
            "parentType": {"customers": "Customer", "vendors": "Vendor", "items": "Item",
                           "employees": "Employee"}[parent[0]],
            "parentId": owner["id"], "dimensionId": dimension["id"],
            "dimensionCode": dimension["code"], "dimensionValueId": value.get("id", ""),
            "dimensionValueCode": value.get("code", ""), "postingValidation": posting,
        }  # fmt: skip

    def _new_timeRegistrationEntries(self, body: dict[str, Any], parent: Any) -> dict[str, Any]:  # noqa: N802
        _required(body, "employeeNumber")
        _required(body, "date")
        if not self.rows("employees", number=body["employeeNumber"]):
            raise Refused(
                400, "Internal_RecordNotFound", f"Employee {body['employeeNumber']} does not exist."
            )
        if body.get("jobNumber") and not self.rows("projects", number=body["jobNumber"]):
            raise Refused(
                400, "Internal_RecordNotFound", f"Job {body['jobNumber']} does not exist."
            )
        quantity = Decimal(str(body.get("quantity", 0)))
        if quantity <= 0:
            raise Refused(400, "Application_FieldValidationException", "Quantity must be positive.")
        return {
            **body,
            "quantity": quantity,
            "status": "Open",
            "jobNumber": body.get("jobNumber", ""),
        }

    def _total(self, entity_set: str, document: dict[str, Any]) -> None:
        lines = self._children(LINE_SETS[entity_set], document["id"])
        total = sum((line["amountIncludingTax"] for line in lines), Decimal("0.00"))
        document.update(totalAmountExcludingTax=total, totalAmountIncludingTax=total)
        self._stamp(document)

    def _post_document(self, entity_set: str, document: dict[str, Any]) -> None:
        if entity_set not in POSTABLE:
            raise Refused(400, "BadRequest_MethodNotImplemented", "No such action.")
        if document["status"] != "Draft":
            raise Refused(400, "Application_DialogException", "The document is already posted.")
        lines = self._children(LINE_SETS[entity_set], document["id"])
        if not lines:
            raise Refused(400, "Application_DialogException", "There is nothing to post.")
        for line in lines:
            if line["lineType"] == "Account":
                self._postable_account(line["lineObjectNumber"])
        if document["totalAmountIncludingTax"] < 0:
            raise Refused(400, "Application_DialogException", "The total must be positive.")
        if entity_set == "salesCreditMemos" and document.get("invoiceId"):
            invoice = self._get("salesInvoices", document["invoiceId"])
            if document["totalAmountIncludingTax"] > invoice["remainingAmount"]:
                raise Refused(
                    400,
                    "Application_DialogException",
                    f"Invoice {invoice['number']} has less left to credit.",
                )
            invoice["remainingAmount"] -= document["totalAmountIncludingTax"]
            invoice["status"] = "Paid" if invoice["remainingAmount"] == 0 else "Open"
            self._stamp(invoice)
        prefix = {"salesInvoices": "PS-INV", "purchaseInvoices": "PP-INV"}.get(entity_set, "PS-CR")
        document.update(
            status="Open",
            number=f"{prefix}{next(self.numbers)}",
            remainingAmount=document["totalAmountIncludingTax"],
        )
        self._stamp(document)

    def _stamp(self, record: dict[str, Any]) -> None:
        """A new version: a new ETag, and lastModifiedDateTime is the fake's clock."""
        record["@odata.etag"] = f'W/"{uuid.uuid4().hex[:12]}"'
        record["lastModifiedDateTime"] = _stamp_time(self.clock())


def _stamp_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if not name.startswith("_")}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _required(body: dict[str, Any], name: str) -> None:
    if body.get(name) in (None, ""):
        raise Refused(400, "BadRequest_RequiredParamNotProvided", f"'{name}' must have a value.")


def _length(body: dict[str, Any], name: str, limit: int) -> None:
    if len(str(body.get(name, ""))) > limit:
        raise Refused(
            400,
            "Application_StringExceededLength",
            f"The length of the string for "
            f"{name} is {len(str(body[name]))}, but it must be at most {limit}.",
        )


def _segment(part: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"([\w.]+)(?:\(([^)]*)\))?", part)
    if match is None:
        raise Refused(400, "BadRequest_NotFound", f"Cannot read the segment {part!r}.")
    return match.group(1), match.group(2)


def _entity_set(path: str) -> str:
    names = [_segment(part)[0] for part in path.strip("/").split("/") if part]
    actions = ("Microsoft.NAV.post", "Microsoft.NAV.receiveAndInvoice")
    names = [name for name in names if name != "companies" and name not in actions]
    return names[-1] if names else ""


_CONDITION = re.compile(r"^(\w+) (eq|ne|ge|gt|le|lt) ('(?:[^']|'')*'|[\w.:-]+)$")


def _filtered(rows: list[dict[str, Any]], expression: str) -> list[dict[str, Any]]:
    """The few $filter forms the connector uses: comparisons joined by `and`."""
    if not expression:
        return rows
    conditions = []
    for part in expression.split(" and "):
        match = _CONDITION.match(part.strip())
        if match is None:
            raise Refused(400, "BadRequest_InvalidRequestUrl", f"Cannot read the filter {part!r}.")
        name, operator, literal = match.groups()
        value = literal[1:-1].replace("''", "'") if literal.startswith("'") else literal
        conditions.append((name, operator, value))
    compare = {
        "eq": str.__eq__,
        "ne": str.__ne__,
        "ge": str.__ge__,
        "gt": str.__gt__,
        "le": str.__le__,
        "lt": str.__lt__,
    }
    return [
        row
        for row in rows
        if all(
            compare[operator](str(row.get(name, "")), value) for name, operator, value in conditions
        )
    ]


@pytest.fixture
def fake_bc() -> Iterator[FakeBusinessCentral]:
    """A running fake Business Central; its `base_url` serves both Entra and the API."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fake = FakeBusinessCentral()
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join()


# --- the demo's books in Business Central, and a connection to them ------------------------------


def _seed_demo_books(fake: FakeBusinessCentral) -> None:
    """The demo connection's lists (console/demo.py) as a Business Central company holds them."""
    from console import demo

    for number, name, _ in demo.ACCOUNTS:
        fake.add("accounts", number=number, displayName=name, blocked=False,
                 accountType="Posting", directPosting=number != "1200", category="")  # fmt: skip
    fake.add("accounts", number="4999", displayName="Total Revenue", blocked=False,
             accountType="End-Total", directPosting=False, category="Income")  # fmt: skip
    fake.add_dimension("DEPARTMENT", {code: line for line, code in demo.SERVICE_LINE_CODES.items()})
    fake.add_dimension("BRANCH", {code: office for office, code in demo.OFFICE_CODES.items()})
    for state, rate in demo.STATE_TAX.items():
        fake.add("taxGroups", code=f"{state}-{rate}", displayName=f"{state} {rate} %",
                 taxType="Sales Tax")  # fmt: skip
    fake.add("taxAreas", code="NC", displayName="North Carolina", taxType="Sales Tax")
    fake.add("paymentTerms", code="NET30", displayName="Net 30 days")
    for code, name in (("CAD", "Canadian dollar"), ("EUR", "Euro")):
        fake.add("currencies", code=code, displayName=name)
    for index, name in enumerate(demo.TECHNICIANS):
        fake.add("employees", number=f"E{300 + index}", displayName=name, status="Active")
    fake.add("items", number="1896-S", displayName="Filter set", blocked=False)
    fake.add("customers", number="C10000", displayName="Adatum Corporation", blocked=" ")


def bc_settings(fake: FakeBusinessCentral, **changes: Any) -> dict[str, Any]:
    return {
        "tenant_id": TENANT, "environment": ENVIRONMENT, "company_id": COMPANY_ID,
        "api_base_url": fake.base_url, "login_base_url": fake.base_url,
        "web_base_url": "https://businesscentral.example", "post_policy": "post",
        "create_customers": True, "create_projects": True, "customer_number_prefix": "ST",
        "timeout_seconds": 5, **changes,
    }  # fmt: skip


def _bc_connection(fake: FakeBusinessCentral, *, slug: str = "bc", **settings: Any) -> Any:
    """A Business Central connection pointing at the fake, with its client id and secret set."""
    from datetime import UTC, datetime

    from syncengine.connections import connection_credentials_set
    from syncengine.erps.business_central.http import forget_cached_state
    from syncengine.models import Connection

    forget_cached_state()
    connection = Connection.objects.create(
        name=f"ServiceTrade → Business Central ({slug})", slug=slug,
        target=Connection.Target.BUSINESS_CENTRAL, time_zone="America/New_York",
        erp_settings=bc_settings(fake, **settings),
    )  # fmt: skip
    return connection_credentials_set(
        connection=connection, side="erp", values={"client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}, actor="test", now=datetime(2026, 11, 20, tzinfo=UTC),
    )  # fmt: skip


def _publish_demo_rules(connection: Any, *, now: datetime) -> Any:
    """Read the connection's catalog from Business Central, import the lists it has no page for
    (pay types, cost codes, departments), and publish the demo's rules; the connection, fresh."""
    from console import demo
    from mappings import services as mapping_services
    from mappings.catalog import catalog_refresh, catalog_store
    from mappings.models import RuleAudit
    from syncengine.erps.base import CatalogItem

    catalog_refresh(connection=connection, actor="test", now=now)
    imported = [CatalogItem(kind="PAY_TYPE", code=code) for code in demo.LABOR_PAY_TYPES.values()]
    imported += [CatalogItem(kind="COST_CODE", code=f"{index + 1}00")
                 for index in range(len(demo.SERVICE_LINES))]  # fmt: skip
    imported += [CatalogItem(kind="DEPARTMENT", code=code) for code in demo.OFFICE_CODES.values()]
    catalog_store(connection=connection, items=imported, actor="test", now=now,
                  action=RuleAudit.Action.CATALOG_IMPORTED,
                  kinds={"PAY_TYPE", "COST_CODE", "DEPARTMENT"})  # fmt: skip
    mapping_services.draft_replace(connection=connection, content=demo.demo_rules(), actor="test",
                                   now=now, reason="Rules for Business Central")  # fmt: skip
    mapping_services.draft_publish(connection=connection, effective_from=demo.RULES_EFFECTIVE_FROM,
                                   reason="Go live", actor="test", now=now)  # fmt: skip
    connection.refresh_from_db()
    return connection
