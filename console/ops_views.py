"""Operations pages: a connection's ERP catalog (refresh, CSV import), its reconciliation runs
and their findings, its settings and credentials (Admins only; credentials write-only, with a
test-connection button), and the signed-in user's API tokens.

Everyone on a connection may read its catalog and reconciliation; only Admins refresh, import or
run (403 for others, after the 404 for a connection the user cannot see). Tokens belong to the
signed-in user: a token of someone else is a 404. Thin function views, one domain call each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.access import (
    Role,
    get_connection_for_admin,
    get_connection_for_user,
    require_role,
    roles_of,
)
from console.api.models import ApiToken
from console.views import HtmxHttpRequest
from mappings.catalog import CatalogImportError, RefreshResult, catalog_import_csv, catalog_refresh
from mappings.models import CATALOG_KIND_CHOICES, CatalogEntry
from syncengine.connections import (
    SettingsInvalid,
    connection_side_save,
    connection_test,
    credential_fields_set,
    settings_from_form,
    side_forms,
)
from syncengine.erps.base import ConnectorError
from syncengine.models import (
    Connection,
    ConnectionAudit,
    ReconciliationFinding,
    ReconciliationRun,
)
from syncengine.reconcile import reconciliation_run
from syncengine.secrets import CredentialsUnreadable
from syncengine.sources.servicetrade_api.client import ServiceTradeError

RECENT_RUNS = 20
RECENT_AUDITS = 20
MAX_ISSUES_SHOWN = 10
MAX_CSV_BYTES = 5 * 1024 * 1024
TOKEN_NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length or 100
FINDING_KINDS = dict(ReconciliationFinding.Kind.choices)


# --- helpers ------------------------------------------------------------------------------------


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def _readable(request: HttpRequest, slug: str) -> Connection:
    require_role(request.user, *Role.ALL)
    return get_connection_for_user(request.user, slug)


def _admin(request: HttpRequest, slug: str) -> Connection:
    return get_connection_for_admin(request.user, slug)


def _is_admin(request: HttpRequest) -> bool:
    return Role.ADMIN in roles_of(request.user)


def _signed(amount: Decimal | None) -> str:
    return "" if amount is None else f"{amount:+,.2f}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _counts_sentence(result: RefreshResult) -> str:
    return (
        f"{_plural(result.returned, 'value')} listed: {result.added} added, "
        f"{result.changed} changed, {result.missing} newly missing."
    )


def _report_issues(request: HttpRequest, result: RefreshResult) -> None:
    """The rule version in force checked against the new catalog, in plain words."""
    if not result.issues:
        return
    errors = sum(1 for issue in result.issues if issue.severity == "ERROR")
    messages.warning(
        request,
        f"The posting rules in force have {_plural(len(result.issues), 'problem')} with the new "
        f"catalog ({errors} would stop posting). Fix them in the posting rules.",
    )
    for issue in result.issues[:MAX_ISSUES_SHOWN]:
        level = messages.ERROR if issue.severity == "ERROR" else messages.WARNING
        messages.add_message(request, level, f"{issue.subject}: {issue.message}")
    if len(result.issues) > MAX_ISSUES_SHOWN:
        messages.warning(request, f"… and {len(result.issues) - MAX_ISSUES_SHOWN} more.")


# --- catalog ------------------------------------------------------------------------------------


def _catalog_page(request: HttpRequest, connection: Connection, **extra: Any) -> TemplateResponse:
    entries = CatalogEntry.objects.filter(connection=connection)
    per_kind = dict(entries.values_list("kind").annotate(n=Count("id")).order_by())
    kinds = [(kind, label, per_kind.get(kind, 0)) for kind, label in CATALOG_KIND_CHOICES]
    kind = request.GET.get("kind", "")
    if kind not in per_kind and kind not in dict(CATALOG_KIND_CHOICES):
        kind = next((code for code, _label, count in kinds if count), CATALOG_KIND_CHOICES[0][0])
    context = {
        "connection": connection,
        "is_admin": _is_admin(request),
        "kinds": kinds,
        "kind": kind,
        "kind_label": dict(CATALOG_KIND_CHOICES).get(kind, kind),
        "entries": entries.filter(kind=kind).order_by("parent", "code"),
        "last_refresh": entries.aggregate(last=Max("refreshed_at"))["last"],
        "import_errors": [],
        "import_form": {"kind": kind, "reason": ""},
        **extra,
    }
    return TemplateResponse(request, "console/ops/catalog.html", context)


@require_GET
@login_required
def catalog(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    return _catalog_page(request, _readable(request, slug))


@require_POST
@login_required
def catalog_refresh_view(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _admin(request, slug)
    try:
        result = catalog_refresh(connection=connection, actor=_actor(request), now=timezone.now())
    except ConnectorError as error:
        messages.error(request, f"The ERP could not be read; nothing changed. {error.message}")
    else:
        messages.success(request, f"Catalog refreshed from the ERP. {_counts_sentence(result)}")
        _report_issues(request, result)
    return redirect("ops:catalog", slug=connection.slug)


@require_POST
@login_required
def catalog_import(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _admin(request, slug)
    kind = request.POST.get("kind", "")
    reason = request.POST.get("reason", "").strip()
    upload = request.FILES.get("file")
    errors: list[str] = []
    text = ""
    if upload is None:
        errors.append("Choose a CSV file to import.")
    elif upload.size is not None and upload.size > MAX_CSV_BYTES:
        errors.append(f"The file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB.")
    else:
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            errors.append(f"The file is not UTF-8 text (byte {error.start + 1}); save it as UTF-8.")
    if not errors:
        try:
            result = catalog_import_csv(
                connection=connection,
                kind=kind,
                text=text,
                actor=_actor(request),
                now=timezone.now(),
                reason=reason,
            )
        except CatalogImportError as error:
            errors = error.errors
        else:
            label = dict(CATALOG_KIND_CHOICES).get(kind.strip().upper(), kind)
            messages.success(request, f"{label} list imported. {_counts_sentence(result)}")
            _report_issues(request, result)
            url = reverse("ops:catalog", kwargs={"slug": connection.slug})
            return redirect(f"{url}?{urlencode({'kind': kind.strip().upper()})}")
    response = _catalog_page(
        request, connection, import_errors=errors, import_form={"kind": kind, "reason": reason}
    )
    response.status_code = 400
    return response


# --- reconciliation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    run: ReconciliationRun
    counts: list[tuple[str, int]]
    difference: str


def _run_row(run: ReconciliationRun) -> RunRow:
    counts = [(FINDING_KINDS.get(kind, kind), count) for kind, count in run.counts.items() if count]
    return RunRow(run=run, counts=counts, difference=_signed(run.difference))


@require_GET
@login_required
def reconciliation(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    connection = _readable(request, slug)
    runs = ReconciliationRun.objects.filter(connection=connection).order_by("-started_at", "-pk")
    context = {
        "connection": connection,
        "is_admin": _is_admin(request),
        "rows": [_run_row(run) for run in runs[:RECENT_RUNS]],
    }
    return TemplateResponse(request, "console/ops/reconciliation.html", context)


@require_POST
@login_required
def reconciliation_run_now(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _admin(request, slug)
    try:
        run = reconciliation_run(connection=connection, actor=_actor(request), now=timezone.now())
    except ConnectorError as error:
        messages.error(request, f"The ERP could not be read; nothing was compared. {error.message}")
        return redirect("ops:reconciliation", slug=connection.slug)
    found = sum(run.counts.values())
    if found:
        messages.warning(request, f"Reconciliation finished with {_plural(found, 'finding')}.")
    else:
        messages.success(request, "Reconciliation finished: everything ties out.")
    return redirect("ops:reconciliation-run", slug=connection.slug, pk=run.pk)


@dataclass(frozen=True)
class FindingRow:
    finding: ReconciliationFinding
    difference: str


@require_GET
@login_required
def reconciliation_detail(request: HtmxHttpRequest, slug: str, pk: int) -> TemplateResponse:
    connection = _readable(request, slug)
    run = ReconciliationRun.objects.filter(connection=connection, pk=pk).first()
    if run is None:
        raise Http404("No such reconciliation run.")
    findings = run.findings.select_related("record").order_by("kind", "key", "pk")
    rows = [
        FindingRow(
            finding=finding,
            difference=(
                _signed(finding.erp_amount - finding.source_amount)
                if finding.erp_amount is not None and finding.source_amount is not None
                else ""
            ),
        )
        for finding in findings
    ]
    context = {
        "connection": connection,
        "is_admin": _is_admin(request),
        "row": _run_row(run),
        "run": run,
        "findings": rows,
    }
    return TemplateResponse(request, "console/ops/reconciliation_run.html", context)


# --- API tokens ---------------------------------------------------------------------------------


def _tokens_of(request: HttpRequest) -> QuerySet[ApiToken]:
    user = request.user
    if not user.is_authenticated:  # login_required comes first; this narrows the type
        raise PermissionDenied("Sign in first.")
    return ApiToken.objects.filter(user=user)


def _tokens_page(request: HttpRequest, **extra: Any) -> TemplateResponse:
    context = {
        "tokens": _tokens_of(request).order_by("-id"),
        "name_max_length": TOKEN_NAME_MAX_LENGTH,
        "name": "",
        "name_error": "",
        **extra,
    }
    return TemplateResponse(request, "console/ops/tokens.html", context)


@require_GET
@login_required
def tokens(request: HtmxHttpRequest) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    return _tokens_page(request)


@never_cache
@require_POST
@login_required
def token_create(request: HtmxHttpRequest) -> TemplateResponse:
    require_role(request.user, *Role.ALL)
    name = request.POST.get("name", "").strip()
    error = ""
    if not name:
        error = "Give the token a name, so you can tell it apart later."
    elif len(name) > TOKEN_NAME_MAX_LENGTH:
        error = f"Keep the name to {TOKEN_NAME_MAX_LENGTH} characters."
    if error:
        response = _tokens_page(request, name=name, name_error=error)
        response.status_code = 400
        return response
    row, secret = ApiToken.issue(user=request.user, name=name)
    # Shown on this page only: the answer is not cached and the token is never stored in clear.
    return TemplateResponse(
        request, "console/ops/token_created.html", {"token": row, "secret": secret}
    )


@require_http_methods(["GET", "POST"])
@login_required
def token_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes. Someone else's token is a 404."""
    require_role(request.user, *Role.ALL)
    token = _tokens_of(request).filter(pk=pk).first()
    if token is None:
        raise Http404("No such token.")
    if request.method == "GET":
        return TemplateResponse(request, "console/ops/token_revoke.html", {"token": token})
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
        messages.success(request, f"Token “{token.name}” revoked; it no longer works.")
    else:
        messages.info(request, f"Token “{token.name}” was already revoked.")
    return redirect("ops:tokens")


# --- connection settings ------------------------------------------------------------------------


def _settings_page(
    request: HttpRequest,
    connection: Connection,
    *,
    errors: dict[str, dict[str, str]] | None = None,
    status: int = 200,
) -> TemplateResponse:
    forms = side_forms(connection)
    sides = []
    for form in forms:
        saved = dict(getattr(connection, f"{form.side}_settings"))
        sides.append(
            {
                "form": form,
                "fields": [
                    {"field": field, "value": _shown(saved.get(field.name, field.default))}
                    for field in form.fields
                ],
                "secrets_set": set(credential_fields_set(connection=connection, side=form.side)),
                "errors": (errors or {}).get(form.side, {}),
            }
        )
    audits = ConnectionAudit.objects.filter(connection=connection)[:RECENT_AUDITS]
    context = {"connection": connection, "sides": sides, "audits": audits}
    return TemplateResponse(request, "console/ops/connection_settings.html", context, status=status)


def _shown(value: Any) -> Any:
    """How a saved value fills its input: objects as JSON text, the rest as they are."""
    return json.dumps(value) if isinstance(value, dict) else value


@require_GET
@login_required
def connection_settings(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    return _settings_page(request, _admin(request, slug))


@require_POST
@login_required
def connection_settings_save(request: HtmxHttpRequest, slug: str, side: str) -> HttpResponse:
    connection = _admin(request, slug)
    form = next((form for form in side_forms(connection) if form.side == side), None)
    if form is None:
        raise Http404("This connection has no such settings.")
    try:
        values = settings_from_form(form, request.POST)
    except SettingsInvalid as invalid:
        messages.error(request, "Nothing was saved: correct the fields marked below.")
        return _settings_page(request, connection, errors={side: invalid.errors}, status=400)
    typed = {name: request.POST.get(f"{side}-secret-{name}", "") for name in form.secrets}
    connection_side_save(
        connection=connection,
        form=form,
        settings=values,
        secrets_typed=typed,
        clear=request.POST.getlist(f"{side}-clear"),
        actor=_actor(request),
        now=timezone.now(),
        reason=request.POST.get("reason", "").strip()[:500],
    )
    messages.success(request, f"{form.title} settings saved. Test the connection to check them.")
    return redirect("ops:connection-settings", slug=connection.slug)


@require_POST
@login_required
def connection_settings_test(request: HtmxHttpRequest, slug: str, side: str) -> TemplateResponse:
    connection = _admin(request, slug)
    if side not in ("erp", "source"):
        raise Http404("This connection has no such side.")
    try:
        found = connection_test(connection=connection, side="erp" if side == "erp" else "source")
    except (ConnectorError, ServiceTradeError, CredentialsUnreadable, LookupError) as error:
        result = {"ok": False, "text": getattr(error, "message", "") or str(error)}
    else:
        result = {"ok": True, "text": found}
    context = {"connection": connection, "side": side, "result": result}
    template = "console/ops/connection_settings.html#test-result"
    if not request.htmx:
        template = "console/ops/connection_test.html"
    return TemplateResponse(request, template, context)
