"""Business Central's answers turned into Crosswalk failures, in words a finance user can act on.

The table was written from the error codes Business Central documents (summarised for us in
../shared/validators/business-central/error-codes.json): each code gets a Crosswalk failure
category, whether trying again later can help, and what it means in our own words. Business
Central's own message follows ours, because it names the record or field at fault.

HTTP status alone decides for answers without a known code: 401/403 credentials, 408/429/5xx
try again later, other 4xx a request Business Central would not take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncengine.erps.base import ConnectorError, FailureCategory

C = FailureCategory


@dataclass(frozen=True)
class Meaning:
    category: str
    transient: bool
    words: str


SETTINGS_HINT = "check the tenant, environment and company in the connection's settings"

CODES: dict[str, Meaning] = {
    # The request itself: Crosswalk built something Business Central does not accept.
    "BadRequest": Meaning(C.VALUE, False, "a value has the wrong form for its field"),
    "BadRequest_InvalidRequestUrl": Meaning(C.INTERNAL, False, "Crosswalk asked for an address "
                                            "Business Central cannot read (a Crosswalk fault)"),
    "BadRequest_NotFound": Meaning(C.INTERNAL, False, "Crosswalk asked for an address Business "
                                   "Central cannot read (a Crosswalk fault)"),
    "BadRequest_ResourceNotFound": Meaning(C.CONNECTION, False, "the company, environment or "
                                           f"API page does not exist: {SETTINGS_HINT}"),
    "BadRequest_InvalidOperation": Meaning(C.INTERNAL, False, "Crosswalk tried to write a field "
                                           "Business Central keeps to itself (a Crosswalk fault)"),
    "BadRequest_InvalidToken": Meaning(C.INTERNAL, False, "an update went without the record's "
                                       "version tag (a Crosswalk fault)"),
    "BadRequest_RequiredParamNotProvided": Meaning(C.VALUE, False, "a required field is empty"),
    "BadRequest_MethodNotAllowed": Meaning(C.INTERNAL, False, "this kind of record cannot be "
                                           "written that way (a Crosswalk fault)"),
    "BadRequest_MethodNotImplemented": Meaning(C.INTERNAL, False, "this kind of record does not "
                                               "offer that action (a Crosswalk fault)"),
    # Someone changed the record between our read and our write: read again and retry.
    "Request_EntityChanged": Meaning(C.CONNECTION, True, "someone changed the record at the same "
                                     "time; it will be read again and retried"),
    # Data the document points at.
    "Internal_DataNotFoundFilter": Meaning(C.MISSING_REFERENCE, False, "a record it refers to "
                                           "was not found"),
    "Internal_RecordNotFound": Meaning(C.MISSING_REFERENCE, False, "a record it refers to does "
                                       "not exist"),
    "Internal_InvalidTableRelation": Meaning(C.MISSING_REFERENCE, False, "a code it uses (account, "
                                             "dimension value, customer …) does not exist"),
    "Internal_EntityWithSameKeyExists": Meaning(C.DUPLICATE, False, "a record with the same key "
                                                "already exists"),
    "Internal_ServerError": Meaning(C.CONNECTION, True, "Business Central had an internal error"),
    "Internal_CompanyNotFound": Meaning(C.CONNECTION, False, f"the company was not found: "
                                        f"{SETTINGS_HINT}"),
    "Internal_TenantUnavailable": Meaning(C.CONNECTION, True, "the Business Central tenant cannot "
                                          "be reached right now"),
    # Business rules of the application: the data must change before a retry can work.
    "Application_DialogException": Meaning(C.VALUE, False, "a business rule refused it"),
    "Application_EvaluateException": Meaning(C.VALUE, False, "a value is not one the field allows"),
    "Application_StringExceededLength": Meaning(C.VALUE, False, "a text is longer than its field"),
    "Application_InvalidGUID": Meaning(C.INTERNAL, False, "an identifier is malformed (a "
                                       "Crosswalk fault)"),
    "Application_CallbackNotAllowed": Meaning(C.VALUE, False, "Business Central wanted to ask a "
                                              "question a connection cannot answer; finish the "
                                              "setup it asks about"),
    "Application_FilterErrorException": Meaning(C.INTERNAL, False, "a search filter was refused "
                                                "(a Crosswalk fault)"),
    "Application_FieldValidationException": Meaning(C.VALUE, False, "a field does not have the "
                                                    "value the record needs (for example an "
                                                    "account or customer is blocked)"),
    "Authentication_InvalidCredentials": Meaning(C.AUTH, True, "Business Central refused the "
                                                 "connection's credentials"),
}  # fmt: skip

AUTHORIZATION = Meaning(C.AUTH, True, "the app registered for Crosswalk lacks a permission set "
                        "it needs in Business Central")  # fmt: skip


def meaning_of(code: str) -> Meaning | None:
    if code in CODES:
        return CODES[code]
    if code.startswith("Authorization_"):
        return AUTHORIZATION
    return None


def _by_status(status: int) -> Meaning:
    if status in (401, 403):
        return Meaning(C.AUTH, True, "Business Central refused the connection's credentials")
    if status == 429:
        return Meaning(C.RATE_LIMIT, True, "Business Central asks us to slow down")
    if status in (408, 500, 502, 503, 504):
        return Meaning(C.CONNECTION, True, f"Business Central answered HTTP {status}")
    if status == 404:
        return Meaning(C.MISSING_REFERENCE, False, "the record was not found")
    if status in (409, 412):
        return CODES["Request_EntityChanged"]
    return Meaning(C.INTERNAL, False, f"Business Central refused the request (HTTP {status})")


# Statuses after which a create may have been committed though we were not told.
UNKNOWN_OUTCOME_STATUSES = frozenset({408, 502, 504})


def error_for(
    *, status: int, body: Any, what: str, creates: bool, retry_after: int | None = None
) -> ConnectorError:
    """The ConnectorError for one refused call; `what` says what was being done ("post the
    invoice ST-INV-1"). `creates`: the call would have written something."""
    code, detail = _code_and_message(body)
    meaning = meaning_of(code) or _by_status(status)
    if status == 429:
        meaning = _by_status(429)
    message = f"Business Central could not {what}: {meaning.words}"
    if code:
        message += f" ({code})"
    if detail:
        message += f". It said: {detail}"
    if status == 429 and retry_after:
        message += f". Trying again in {retry_after} s"
    return ConnectorError(
        message + ".",
        category=meaning.category,
        transient=meaning.transient,
        outcome_unknown=creates and status in UNKNOWN_OUTCOME_STATUSES,
        retry_after_seconds=retry_after if meaning.transient else None,
    )


def _code_and_message(body: Any) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code = str(error.get("code") or "")
    detail = " ".join(str(error.get("message") or "").split())
    # Business Central appends a correlation id to many messages; it helps support, keep it short.
    return code, detail[:400]


def retry_after_seconds(value: str | None) -> int | None:
    """Retry-After in whole seconds (Business Central sends seconds); None when absent or odd."""
    if not value:
        return None
    try:
        return max(int(float(value.strip())), 1)  # a header value, not money
    except ValueError:
        return None
