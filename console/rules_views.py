"""The posting-rules pages: finance edits a connection's crosswalk in a draft, reviews what it
changes and fixes, publishes it as a version, and rolls back or reads the history.

Everyone on a connection may read its rules; only Finance and Admin may change them (403 for
AR). Function views, one domain call each (`mappings.services` for writes, `console.rules_selectors`
for the reads that render the answer). Inline edits are htmx: a map row or routing rule is
fetched as an edit form, saved, and answered with the row partial of the page's own template;
without JavaScript the same forms post and redirect back to the page.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from console import rules_selectors as selectors
from console.access import Role, get_connection_for_user, require_role, roles_of
from console.views import HtmxHttpRequest
from mappings import preview
from mappings import services as rules
from mappings.catalog import connection_today
from mappings.models import RuleVersion
from mappings.ruleset import MAP_KINDS, ROUTING_ATTRIBUTES, MapKind
from mappings.transfer import TransferError
from syncengine.models import Connection

EDITORS = (Role.ADMIN, Role.FINANCE)


# --- helpers ------------------------------------------------------------------------------------


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def _readable(request: HttpRequest, slug: str) -> Connection:
    require_role(request.user, *Role.ALL)
    return get_connection_for_user(request.user, slug)


def _editable(request: HttpRequest, slug: str) -> Connection:
    # 404 before 403: a connection the user cannot see is not revealed by the role check.
    connection = get_connection_for_user(request.user, slug)
    require_role(request.user, *EDITORS)
    return connection


def _can_edit(request: HttpRequest) -> bool:
    return bool(roles_of(request.user) & set(EDITORS))


def _map_kind(kind: str) -> MapKind:
    if kind not in MAP_KINDS:
        raise Http404("No such map.")
    return MAP_KINDS[kind]


def _partial(request: HtmxHttpRequest) -> bool:
    """Answer with a fragment? Not for boosted links and forms: they want the whole page."""
    return bool(request.htmx) and not request.htmx.boosted


def _reason(request: HttpRequest) -> str:
    return request.POST.get("reason", "").strip()


def _date_field(request: HttpRequest, name: str, default: date) -> date:
    """The date a form posted (ISO, as <input type=date> sends it). Raises RulesError."""
    text = request.POST.get(name, "").strip()
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise rules.RulesError(f"{text!r} is not a date; use YYYY-MM-DD.") from None


def _context(request: HttpRequest, connection: Connection, **extra: Any) -> dict[str, Any]:
    return {"connection": connection, "can_edit": _can_edit(request), **extra}


def _page(
    request: HttpRequest, template: str, connection: Connection, **extra: Any
) -> TemplateResponse:
    return TemplateResponse(request, template, _context(request, connection, **extra))


# --- overview -----------------------------------------------------------------------------------


@require_GET
@login_required
def overview(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    connection = _readable(request, slug)
    page = selectors.rules_overview(connection=connection, now=timezone.now())
    return _page(request, "console/rules/overview.html", connection, page=page, state=page.state)


@require_GET
@login_required
def status(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """The draft banner alone: the pages reload it after an inline edit (`rules-changed`)."""
    connection = _readable(request, slug)
    state = selectors.rules_state(connection=connection, now=timezone.now())
    return _page(request, "console/rules/_nav.html#status", connection, state=state)


def _changed(response: HttpResponse) -> HttpResponse:
    """An inline edit changed the draft: tell the page, whose banner reloads itself."""
    return trigger_client_event(response, "rules-changed")


# --- value maps ---------------------------------------------------------------------------------

MAP_TEMPLATE = "console/rules/map.html"


@require_GET
@login_required
def map_edit(request: HtmxHttpRequest, slug: str, kind: str) -> TemplateResponse:
    """The map's rows; `?edit=<source>` opens one row's form (the edit link without htmx)."""
    connection = _readable(request, slug)
    page = selectors.map_page(connection=connection, kind=_map_kind(kind), now=timezone.now())
    return _page(
        request,
        MAP_TEMPLATE,
        connection,
        page=page,
        state=page.state,
        map_kind=page.kind,
        map_kinds=list(MAP_KINDS.values()),
        fields=page.fields,
        editing=request.GET.get("edit", "") if _can_edit(request) else "",
        add_row=selectors.map_form_row(page.kind, "", {}),
    )


def _map_url(connection: Connection, kind: MapKind) -> str:
    return reverse("rules:map", kwargs={"slug": connection.slug, "kind": kind.key})


def _row_response(
    request: HtmxHttpRequest, connection: Connection, kind: MapKind, source: str, **extra: Any
) -> HttpResponse:
    row = selectors.map_row(connection=connection, kind=kind, source=source, now=timezone.now())
    if row is None:
        return HttpResponse("")  # deleted meanwhile: the row leaves the table
    return _page(
        request,
        f"{MAP_TEMPLATE}#row",
        connection,
        map_kind=kind,
        row=row,
        **extra,
    )


@vary_on_headers("HX-Request")
@require_GET
@login_required
def map_row(request: HtmxHttpRequest, slug: str, kind: str) -> HttpResponse:
    """One row as shown in the table (the edit form's Cancel, with htmx)."""
    connection = _readable(request, slug)
    map_kind = _map_kind(kind)
    if not _partial(request):
        return redirect(_map_url(connection, map_kind))
    return _row_response(request, connection, map_kind, request.GET.get("source", ""), focus=True)


@vary_on_headers("HX-Request")
@require_GET
@login_required
def map_row_edit(request: HtmxHttpRequest, slug: str, kind: str) -> HttpResponse:
    """One row as a form, swapped in for the row by its Edit link."""
    connection = _editable(request, slug)
    map_kind = _map_kind(kind)
    source = request.GET.get("source", "")
    if not _partial(request):
        return redirect(f"{_map_url(connection, map_kind)}?edit={source}")
    row = selectors.map_row(connection=connection, kind=map_kind, source=source, now=timezone.now())
    if row is None:
        raise Http404("That value is not mapped.")
    return _page(
        request,
        f"{MAP_TEMPLATE}#row_edit",
        connection,
        map_kind=map_kind,
        row=row,
        errors=[],
    )


def _map_row_set(request: HtmxHttpRequest, connection: Connection, kind: MapKind) -> str:
    """Save the posted row into the draft: "" when saved, else what stopped it."""
    try:
        rules.draft_map_row_set(
            connection=connection,
            map_kind=kind.key,
            source_value=request.POST.get("source", ""),
            targets={name: request.POST.get(name, "") for name in kind.targets},
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        return str(error)
    return ""


@require_POST
@login_required
def map_row_save(request: HtmxHttpRequest, slug: str, kind: str) -> HttpResponse:
    """Save an edited row: the row with its checks, or the form again with what stopped it."""
    connection = _editable(request, slug)
    map_kind = _map_kind(kind)
    source = request.POST.get("source", "").strip()
    error = _map_row_set(request, connection, map_kind)
    if not _partial(request):
        if error:
            messages.error(request, error)
            return redirect(f"{_map_url(connection, map_kind)}?edit={source}")
        messages.success(request, f"Saved {source!r} in the draft.")
        return redirect(_map_url(connection, map_kind))
    if error:
        return _page(
            request,
            f"{MAP_TEMPLATE}#row_edit",
            connection,
            map_kind=map_kind,
            row=selectors.map_form_row(map_kind, source, request.POST),
            errors=[error],
        )
    return _changed(_row_response(request, connection, map_kind, source, focus=True, saved=True))


@require_POST
@login_required
def map_row_add(request: HtmxHttpRequest, slug: str, kind: str) -> HttpResponse:
    """Add a row (or replace the row of the same source value): the table again, with htmx."""
    connection = _editable(request, slug)
    map_kind = _map_kind(kind)
    error = _map_row_set(request, connection, map_kind)
    if not _partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Added {request.POST.get('source', '').strip()!r}.")
        return redirect(_map_url(connection, map_kind))
    page = selectors.map_page(connection=connection, kind=map_kind, now=timezone.now())
    response = _page(
        request,
        f"{MAP_TEMPLATE}#body",
        connection,
        page=page,
        state=page.state,
        map_kind=map_kind,
        fields=page.fields,
        editing="",
        add_row=selectors.map_form_row(
            map_kind, request.POST.get("source", "") if error else "", request.POST if error else {}
        ),
        add_reason=_reason(request) if error else "",
        add_error=error,
        added=request.POST.get("source", "").strip() if not error else "",
    )
    return response if error else _changed(response)


@require_POST
@login_required
def map_row_delete(request: HtmxHttpRequest, slug: str, kind: str) -> HttpResponse:
    connection = _editable(request, slug)
    map_kind = _map_kind(kind)
    source = request.POST.get("source", "")
    try:
        rules.draft_map_row_delete(
            connection=connection,
            map_kind=map_kind.key,
            source_value=source,
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        if _partial(request):
            return HttpResponse("")  # not mapped (any more): the row goes either way
        messages.error(request, str(error))
    else:
        if _partial(request):
            return _changed(HttpResponse(""))
        messages.success(request, f"Removed {source!r} from the draft.")
    return redirect(_map_url(connection, map_kind))


# --- routing ------------------------------------------------------------------------------------

ROUTING_TEMPLATE = "console/rules/routing.html"


@require_GET
@login_required
def routing(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    connection = _readable(request, slug)
    page = selectors.routing_page(connection=connection, now=timezone.now())
    editing = request.GET.get("edit", "")
    return _page(
        request,
        ROUTING_TEMPLATE,
        connection,
        page=page,
        state=page.state,
        editing=int(editing) if editing.isdigit() and _can_edit(request) else None,
        add_row=selectors.routing_form_row(None, {}),
    )


def _routing_url(connection: Connection) -> str:
    return reverse("rules:routing", kwargs={"slug": connection.slug})


def _routing_row_response(
    request: HtmxHttpRequest, connection: Connection, rule_id: int, **extra: Any
) -> HttpResponse:
    row = selectors.routing_row(connection=connection, rule_id=rule_id, now=timezone.now())
    if row is None:
        return HttpResponse("")
    return _page(request, f"{ROUTING_TEMPLATE}#rule_row", connection, row=row, **extra)


@vary_on_headers("HX-Request")
@require_GET
@login_required
def routing_row(request: HtmxHttpRequest, slug: str, rule_id: int) -> HttpResponse:
    connection = _readable(request, slug)
    if not _partial(request):
        return redirect(_routing_url(connection))
    return _routing_row_response(request, connection, rule_id, focus=True)


@vary_on_headers("HX-Request")
@require_GET
@login_required
def routing_row_edit(request: HtmxHttpRequest, slug: str, rule_id: int) -> HttpResponse:
    connection = _editable(request, slug)
    if not _partial(request):
        return redirect(f"{_routing_url(connection)}?edit={rule_id}")
    row = selectors.routing_row(connection=connection, rule_id=rule_id, now=timezone.now())
    if row is None:
        raise Http404("No such routing rule.")
    return _page(request, f"{ROUTING_TEMPLATE}#rule_edit", connection, row=row, errors=[])


def _routing_rule_set(
    request: HtmxHttpRequest, connection: Connection, rule_id: int | None
) -> tuple[int | None, str]:
    """Save the posted rule: (its id, "") when saved, else (None, what stopped it)."""
    post = request.POST
    try:
        priority = int(post.get("priority", "").strip() or 0)
    except ValueError:
        return None, "The priority is a whole number, e.g. 0 or 10."
    try:
        draft = rules.draft_routing_rule_set(
            connection=connection,
            rule_id=rule_id,
            conditions={
                name: post.get(f"cond_{name}", "").strip()
                for name in ROUTING_ATTRIBUTES
                if post.get(f"cond_{name}", "").strip()
            },
            account=post.get("account", "").strip(),
            priority=priority,
            note=post.get("note", "").strip(),
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        return None, str(error)
    # A new rule gets the highest id of the draft.
    return rule_id or max(rule["id"] for rule in draft.content["routing"]), ""


@require_POST
@login_required
def routing_rule_save(request: HtmxHttpRequest, slug: str, rule_id: int) -> HttpResponse:
    connection = _editable(request, slug)
    saved, error = _routing_rule_set(request, connection, rule_id)
    if not _partial(request):
        if error:
            messages.error(request, error)
            return redirect(f"{_routing_url(connection)}?edit={rule_id}")
        messages.success(request, f"Saved routing rule {rule_id} in the draft.")
        return redirect(_routing_url(connection))
    if error:
        return _page(
            request,
            f"{ROUTING_TEMPLATE}#rule_edit",
            connection,
            row=selectors.routing_form_row(rule_id, request.POST),
            errors=[error],
        )
    return _changed(_routing_row_response(request, connection, rule_id, focus=True, saved=True))


@require_POST
@login_required
def routing_rule_add(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    saved, error = _routing_rule_set(request, connection, None)
    if not _partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Added routing rule {saved}.")
        return redirect(_routing_url(connection))
    page = selectors.routing_page(connection=connection, now=timezone.now())
    response = _page(
        request,
        f"{ROUTING_TEMPLATE}#body",
        connection,
        page=page,
        state=page.state,
        editing=None,
        add_row=selectors.routing_form_row(None, request.POST if error else {}),
        add_reason=_reason(request) if error else "",
        add_error=error,
        added=saved,
    )
    return response if error else _changed(response)


@require_POST
@login_required
def routing_rule_delete(request: HtmxHttpRequest, slug: str, rule_id: int) -> HttpResponse:
    connection = _editable(request, slug)
    try:
        rules.draft_routing_rule_delete(
            connection=connection,
            rule_id=rule_id,
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        if _partial(request):
            return HttpResponse("")
        messages.error(request, str(error))
    else:
        if _partial(request):
            return _changed(HttpResponse(""))
        messages.success(request, f"Removed routing rule {rule_id} from the draft.")
    return redirect(_routing_url(connection))


# --- defaults -----------------------------------------------------------------------------------

DEFAULT_FIELDS = ("receivable_account", "revenue_account", "tax_account", "tax_code_source")


@require_GET
@login_required
def defaults(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    connection = _readable(request, slug)
    page = selectors.defaults_page(connection=connection, now=timezone.now())
    return _page(
        request, "console/rules/defaults.html", connection, page=page, state=page.state, error=""
    )


@require_POST
@login_required
def defaults_save(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    try:
        rules.draft_defaults_set(
            connection=connection,
            defaults={name: request.POST.get(name, "").strip() for name in DEFAULT_FIELDS},
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        page = selectors.defaults_page(connection=connection, now=timezone.now())
        return _page(
            request,
            "console/rules/defaults.html",
            connection,
            page=page,
            state=page.state,
            error=str(error),
        )
    messages.success(request, "Saved the defaults in the draft.")
    return redirect("rules:defaults", slug=connection.slug)


# --- review, publish, discard -------------------------------------------------------------------

REVIEW_TEMPLATE = "console/rules/review.html"


def _review(
    request: HtmxHttpRequest, connection: Connection, *, form: dict[str, str], **extra: Any
) -> TemplateResponse:
    page = selectors.review_page(connection=connection, now=timezone.now())
    form = {"effective_from": page.state.today.isoformat(), "reason": "", **form}
    return _page(
        request, REVIEW_TEMPLATE, connection, page=page, state=page.state, form=form, **extra
    )


@require_GET
@login_required
def review(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """The draft against the version in force: changes, checks, the records it fixes."""
    return _review(request, _readable(request, slug), form={})


@require_POST
@login_required
def publish(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    now = timezone.now()
    form = {name: request.POST.get(name, "").strip() for name in ("effective_from", "reason")}
    try:
        effective_from = _date_field(request, "effective_from", connection_today(connection, now))
        version = rules.draft_publish(
            connection=connection,
            effective_from=effective_from,
            reason=_reason(request),
            actor=_actor(request),
            now=now,
        )
    except rules.PublishRefused as refused:
        return _review(request, connection, form=form, publish_error=str(refused), refused=True)
    except rules.RulesError as error:
        return _review(request, connection, form=form, publish_error=str(error))
    messages.success(
        request,
        f"Published version {version.number}, in force for documents dated from "
        f"{version.effective_from.isoformat()}.",
    )
    return redirect("rules:published", slug=connection.slug, number=version.number)


@require_POST
@login_required
def discard(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    try:
        if not _reason(request):
            raise rules.RulesError("Say why: discarding a draft needs a reason.")
        rules.draft_discard(
            connection=connection,
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        messages.error(request, str(error))
        return redirect("rules:review", slug=connection.slug)
    messages.success(request, "Discarded the draft: the rules in force are unchanged.")
    return redirect("rules:overview", slug=connection.slug)


def _version(connection: Connection, number: int) -> RuleVersion:
    version = RuleVersion.objects.filter(connection=connection, number=number).first()
    if version is None:
        raise Http404("No such version.")
    return version


@require_GET
@login_required
def published(request: HtmxHttpRequest, slug: str, number: int) -> TemplateResponse:
    """After publishing: the blocked records the version fixes, and a button to retry them."""
    connection = _readable(request, slug)
    page = selectors.published_page(connection=connection, version=_version(connection, number))
    return _page(request, "console/rules/published.html", connection, page=page)


@require_POST
@login_required
def retry_fixed(request: HtmxHttpRequest, slug: str, number: int) -> HttpResponse:
    """Retry exactly the records this version fixes, worked out again now: a record posted or
    retried since the page was shown is not queued twice."""
    connection = _editable(request, slug)
    version = _version(connection, number)
    # Two calls, one purpose: `impact_retry` takes ids so it can also serve a hand-picked list.
    fixed = preview.records_fixed_by(connection=connection, version=version)
    queued = preview.impact_retry(
        connection=connection, record_ids=fixed, actor=_actor(request), now=timezone.now()
    )
    noun = "record" if queued == 1 else "records"
    if queued:
        messages.success(request, f"Queued {queued} {noun} for another attempt.")
    else:
        messages.info(request, "No blocked record is waiting for this version any more.")
    return redirect("rules:published", slug=connection.slug, number=version.number)


# --- versions and history -----------------------------------------------------------------------

VERSIONS_TEMPLATE = "console/rules/versions.html"


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _versions(request: HtmxHttpRequest, connection: Connection, **extra: Any) -> TemplateResponse:
    page = selectors.versions_page(
        connection=connection,
        now=timezone.now(),
        a=_number(request.GET.get("a", "")),
        b=_number(request.GET.get("b", "")),
    )
    extra.setdefault("rollback", {})
    return _page(request, VERSIONS_TEMPLATE, connection, page=page, state=page.state, **extra)


@require_GET
@login_required
def versions(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """Every published version; `?a=1&b=2` shows what changed from version a to version b."""
    return _versions(request, _readable(request, slug))


@require_POST
@login_required
def rollback(request: HtmxHttpRequest, slug: str, number: int) -> HttpResponse:
    connection = _editable(request, slug)
    now = timezone.now()
    form = {"number": number, "effective_from": request.POST.get("effective_from", "")}
    form["reason"] = _reason(request)
    try:
        version = rules.version_rollback(
            connection=connection,
            number=number,
            effective_from=_date_field(
                request, "effective_from", connection_today(connection, now)
            ),
            reason=_reason(request),
            actor=_actor(request),
            now=now,
        )
    except rules.PublishRefused as refused:
        return _versions(request, connection, rollback={**form, "error": str(refused)},
                         issues=refused.issues)  # fmt: skip
    except rules.RulesError as error:
        return _versions(request, connection, rollback={**form, "error": str(error)})
    messages.success(
        request,
        f"Published version {version.number} with the rules of version {number}, in force for "
        f"documents dated from {version.effective_from.isoformat()}.",
    )
    return redirect("rules:versions", slug=connection.slug)


@require_GET
@login_required
def history(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """Who changed one rule (`?subject=maps.SERVICE_LINE.HVAC`), or every rule, and why."""
    connection = _readable(request, slug)
    subject = request.GET.get("subject", "").strip()
    rows = selectors.rule_history(connection=connection, subject=subject)
    return _page(request, "console/rules/history.html", connection, subject=subject, rows=rows)


# --- dimensions, numbering and field owners -----------------------------------------------------
#
# One table for the three list sections (`selectors.SECTIONS`): rows addressed by their key
# fields in the query string (`?entity=CUSTOMER&field=tax_code`), the same inline edit, add and
# delete as the map editor, and what stopped a save shown next to the field it names.

SECTION_TEMPLATE = "console/rules/section.html"


def _section_kind(section: str) -> selectors.SectionKind:
    if section not in selectors.SECTIONS:
        raise Http404("No such section.")
    return selectors.SECTIONS[section]


def _section_url(connection: Connection, kind: selectors.SectionKind) -> str:
    return reverse("rules:section", kwargs={"slug": connection.slug, "section": kind.key})


def _section_key(kind: selectors.SectionKind, data: Any) -> tuple[str, ...]:
    return tuple(data.get(column.name, "").strip() for column in kind.key_columns)


@require_GET
@login_required
def section(request: HtmxHttpRequest, slug: str, section: str) -> TemplateResponse:
    """The section's rows; `?edit=<subject>` opens one row's form (the edit link without htmx)."""
    connection = _readable(request, slug)
    kind = _section_kind(section)
    page = selectors.section_page(connection=connection, kind=kind, now=timezone.now())
    return _page(
        request,
        SECTION_TEMPLATE,
        connection,
        page=page,
        state=page.state,
        kind=kind,
        editing=request.GET.get("edit", "") if _can_edit(request) else "",
        add_row=selectors.section_form_row(kind, {}),
    )


def _section_row_response(
    request: HtmxHttpRequest,
    connection: Connection,
    kind: selectors.SectionKind,
    key: tuple[str, ...],
    **extra: Any,
) -> HttpResponse:
    row = selectors.section_row(connection=connection, kind=kind, key=key, now=timezone.now())
    if row is None:
        return HttpResponse("")  # deleted meanwhile: the row leaves the table
    return _page(request, f"{SECTION_TEMPLATE}#row", connection, kind=kind, row=row, **extra)


@vary_on_headers("HX-Request")
@require_GET
@login_required
def section_row(request: HtmxHttpRequest, slug: str, section: str) -> HttpResponse:
    """One row as shown in the table (the edit form's Cancel, with htmx)."""
    connection = _readable(request, slug)
    kind = _section_kind(section)
    if not _partial(request):
        return redirect(_section_url(connection, kind))
    key = _section_key(kind, request.GET)
    return _section_row_response(request, connection, kind, key, focus=True)


@vary_on_headers("HX-Request")
@require_GET
@login_required
def section_row_edit(request: HtmxHttpRequest, slug: str, section: str) -> HttpResponse:
    """One row as a form, swapped in for the row by its Edit link."""
    connection = _editable(request, slug)
    kind = _section_kind(section)
    key = _section_key(kind, request.GET)
    if not _partial(request):
        subject = ".".join([kind.key, *key])
        return redirect(f"{_section_url(connection, kind)}?{urlencode({'edit': subject})}")
    row = selectors.section_row(connection=connection, kind=kind, key=key, now=timezone.now())
    if row is None:
        raise Http404(f"The rules have no such {kind.item}.")
    return _page(request, f"{SECTION_TEMPLATE}#row_edit", connection, kind=kind, row=row)


def _whole_number(data: Any, name: str, default: int | None = None) -> int:
    text = data.get(name, "").strip()
    if not text and default is not None:
        return default
    try:
        return int(text)
    except ValueError:
        raise rules.RulesError(f"{name}: {text or 'nothing'} is not a whole number") from None


def _section_set(
    request: HtmxHttpRequest, connection: Connection, kind: selectors.SectionKind
) -> str:
    """Save the posted row into the draft: "" when saved, else what stopped it (the services
    name the field: `numbering[0].start: …`)."""
    post = request.POST
    common: dict[str, Any] = {
        "connection": connection, "actor": _actor(request), "now": timezone.now(),
        "reason": _reason(request),
    }  # fmt: skip
    text = {column.name: post.get(column.name, "").strip() for column in kind.columns}
    try:
        if kind.key == "dimensions":
            fields: dict[str, Any] = {"source": text["source"], "default": text["default"]}
            fields |= {name: bool(post.get(name))
                       for name in ("pass_through", "required", "customer_default")}  # fmt: skip
            rules.draft_dimension_update(dimension=text["dimension"], fields=fields, **common)
        elif kind.key == "numbering":
            numbers = {name: _whole_number(post, name) for name in ("start", "end")}
            rule: dict[str, Any] = {"entity": text["entity"], "prefix": text["prefix"], **numbers}
            rule["width"] = _whole_number(post, "width", default=0)
            rules.draft_numbering_rule_set(rule=rule, **common)
        else:
            rules.draft_field_owner_set(
                entity=text["entity"], field=text["field"], owner=text["owner"], **common
            )
    except rules.RulesError as error:
        return str(error)
    return ""


@require_POST
@login_required
def section_row_save(request: HtmxHttpRequest, slug: str, section: str) -> HttpResponse:
    """Save an edited row: the row with its checks, or the form again with what stopped it."""
    connection = _editable(request, slug)
    kind = _section_kind(section)
    key = _section_key(kind, request.POST)
    error = _section_set(request, connection, kind)
    if not _partial(request):
        if error:
            messages.error(request, error)
            subject = ".".join([kind.key, *key])
            return redirect(f"{_section_url(connection, kind)}?{urlencode({'edit': subject})}")
        messages.success(request, f"Saved the {kind.item} {' '.join(key)} in the draft.")
        return redirect(_section_url(connection, kind))
    if error:
        row = selectors.section_form_row(kind, request.POST, error, key=key)
        return _page(request, f"{SECTION_TEMPLATE}#row_edit", connection, kind=kind, row=row)
    return _changed(_section_row_response(request, connection, kind, key, focus=True, saved=True))


@require_POST
@login_required
def section_row_add(request: HtmxHttpRequest, slug: str, section: str) -> HttpResponse:
    """Add a row (or change the row with the same key): the table again, with htmx."""
    connection = _editable(request, slug)
    kind = _section_kind(section)
    key = _section_key(kind, request.POST)
    error = _section_set(request, connection, kind)
    if not _partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Added the {kind.item} {' '.join(key)} to the draft.")
        return redirect(_section_url(connection, kind))
    page = selectors.section_page(connection=connection, kind=kind, now=timezone.now())
    response = _page(
        request,
        f"{SECTION_TEMPLATE}#body",
        connection,
        page=page,
        state=page.state,
        kind=kind,
        editing="",
        add_row=selectors.section_form_row(kind, request.POST if error else {}, error),
        add_reason=_reason(request) if error else "",
        added=".".join([kind.key, *key]) if not error else "",
    )
    return response if error else _changed(response)


@require_POST
@login_required
def section_row_delete(request: HtmxHttpRequest, slug: str, section: str) -> HttpResponse:
    connection = _editable(request, slug)
    kind = _section_kind(section)
    key = _section_key(kind, request.POST)
    common: dict[str, Any] = {
        "connection": connection, "actor": _actor(request), "now": timezone.now(),
        "reason": _reason(request),
    }  # fmt: skip
    try:
        if kind.key == "dimensions":
            rules.draft_dimension_delete(dimension=key[0], **common)
        elif kind.key == "numbering":
            rules.draft_numbering_rule_delete(entity=key[0], **common)
        else:
            rules.draft_field_owner_delete(entity=key[0], field=key[1], **common)
    except rules.RulesError as error:
        if _partial(request):
            return HttpResponse("")  # not there (any more): the row goes either way
        messages.error(request, str(error))
    else:
        if _partial(request):
            return _changed(HttpResponse(""))
        messages.success(request, f"Removed the {kind.item} {' '.join(key)} from the draft.")
    return redirect(_section_url(connection, kind))


# --- one dimension's values ---------------------------------------------------------------------

DIMENSION_TEMPLATE = "console/rules/dimension.html"


def _dimension_url(connection: Connection, dimension: str) -> str:
    url = reverse("rules:dimension", kwargs={"slug": connection.slug})
    return f"{url}?{urlencode({'dimension': dimension})}"


def _dimension_body(
    request: HtmxHttpRequest, connection: Connection, template: str, **extra: Any
) -> TemplateResponse:
    dimension = request.GET.get("dimension", "") or request.POST.get("dimension", "")
    page = selectors.dimension_page(connection=connection, dimension=dimension, now=timezone.now())
    if page is None:
        raise Http404("The rules have no setting for that dimension.")
    extra = {"editing": "", "add_source": "", "add_code": "", "add_error": "", **extra}
    return _page(request, template, connection, page=page, state=page.state,
                 choices=page.choices, **extra)  # fmt: skip


@require_GET
@login_required
def dimension(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """`?dimension=DEPARTMENT`: which value the dimension gets for each source value;
    `&edit=<source value>` opens one row's form (the edit link without htmx)."""
    connection = _readable(request, slug)
    editing = request.GET.get("edit", "") if _can_edit(request) else ""
    return _dimension_body(request, connection, DIMENSION_TEMPLATE, editing=editing)


@require_GET
@login_required
def target_check(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """Validation as you type: what publishing would say of the target value in the input named
    `field` (its catalog `kind` says which ERP list it must be in)."""
    connection = _readable(request, slug)
    field = request.GET.get("field", "")
    check = selectors.target_check(
        connection=connection, kind=request.GET.get("kind", ""), code=request.GET.get(field, "")
    )
    return TemplateResponse(
        request,
        "console/rules/map.html#target-check",
        {"check": check, "check_id": request.GET.get("target", "")},
    )


@vary_on_headers("HX-Request")
@require_GET
@login_required
def dimension_value_search(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """The picker's options for what was typed (`q`, or the `code` input itself): the ERP's
    values of the dimension whose code or name holds it."""
    connection = _readable(request, slug)
    query = request.GET.get("q", "") or request.GET.get("code", "")
    choices = selectors.dimension_value_choices(
        connection=connection, dimension=request.GET.get("dimension", ""), query=query
    )
    return _page(request, f"{DIMENSION_TEMPLATE}#options", connection, choices=choices)


def _value_row_response(
    request: HtmxHttpRequest, connection: Connection, dimension: str, source: str, **extra: Any
) -> HttpResponse:
    row = selectors.dimension_value_row(
        connection=connection, dimension=dimension, source=source, now=timezone.now()
    )
    if row is None:
        return HttpResponse("")
    return _page(request, f"{DIMENSION_TEMPLATE}#row", connection, row=row, **extra)


@vary_on_headers("HX-Request")
@require_GET
@login_required
def dimension_value_row(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _readable(request, slug)
    dimension, source = request.GET.get("dimension", ""), request.GET.get("source", "")
    if not _partial(request):
        return redirect(_dimension_url(connection, dimension))
    return _value_row_response(request, connection, dimension, source, focus=True)


@vary_on_headers("HX-Request")
@require_GET
@login_required
def dimension_value_edit(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    dimension, source = request.GET.get("dimension", ""), request.GET.get("source", "")
    if not _partial(request):
        query = urlencode({"edit": source})
        return redirect(f"{_dimension_url(connection, dimension)}&{query}")
    row = selectors.dimension_value_row(
        connection=connection, dimension=dimension, source=source, now=timezone.now()
    )
    if row is None:
        raise Http404("That source value has no value for this dimension.")
    return _page(request, f"{DIMENSION_TEMPLATE}#row_edit", connection, row=row, errors=[])


def _dimension_value_set(request: HtmxHttpRequest, connection: Connection) -> str:
    try:
        rules.draft_dimension_value_set(
            connection=connection,
            dimension=request.POST.get("dimension", ""),
            source_value=request.POST.get("source", ""),
            code=request.POST.get("code", ""),
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        return str(error)
    return ""


@require_POST
@login_required
def dimension_value_save(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    dimension, source = request.POST.get("dimension", ""), request.POST.get("source", "").strip()
    error = _dimension_value_set(request, connection)
    if not _partial(request):
        if error:
            messages.error(request, error)
            query = urlencode({"edit": source})
            return redirect(f"{_dimension_url(connection, dimension)}&{query}")
        messages.success(request, f"Saved {source!r} in the draft.")
        return redirect(_dimension_url(connection, dimension))
    if error:
        code = request.POST.get("code", "").strip()
        row = selectors.DimensionValueRow(dimension=dimension, source=source, code=code)
        return _page(request, f"{DIMENSION_TEMPLATE}#row_edit", connection, row=row,
                     errors=[error])  # fmt: skip
    return _changed(
        _value_row_response(request, connection, dimension, source, focus=True, saved=True)
    )


@require_POST
@login_required
def dimension_value_add(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    dimension, source = request.POST.get("dimension", ""), request.POST.get("source", "").strip()
    error = _dimension_value_set(request, connection)
    if not _partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"Added {source!r} to the draft.")
        return redirect(_dimension_url(connection, dimension))
    response = _dimension_body(
        request,
        connection,
        f"{DIMENSION_TEMPLATE}#body",
        add_source=source if error else "",
        add_code=request.POST.get("code", "").strip() if error else "",
        add_reason=_reason(request) if error else "",
        add_error=error,
        added=source if not error else "",
    )
    return response if error else _changed(response)


@require_POST
@login_required
def dimension_value_delete(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    connection = _editable(request, slug)
    dimension, source = request.POST.get("dimension", ""), request.POST.get("source", "")
    try:
        rules.draft_dimension_value_delete(
            connection=connection,
            dimension=dimension,
            source_value=source,
            actor=_actor(request),
            now=timezone.now(),
            reason=_reason(request),
        )
    except rules.RulesError as error:
        if _partial(request):
            return HttpResponse("")
        messages.error(request, str(error))
    else:
        if _partial(request):
            return _changed(HttpResponse(""))
        messages.success(request, f"Removed {source!r} from the draft.")
    return redirect(_dimension_url(connection, dimension))


# --- files: export and import -------------------------------------------------------------------

TRANSFER_TEMPLATE = "console/rules/transfer.html"
IMPORT_PARTS = ("json", "routing", *MAP_KINDS)


def _transfer(
    request: HtmxHttpRequest,
    connection: Connection,
    template: str = TRANSFER_TEMPLATE,
    **extra: Any,
) -> TemplateResponse:
    state = selectors.rules_state(connection=connection, now=timezone.now())
    versions = RuleVersion.objects.filter(connection=connection).order_by("-number")
    extra = {"form": {"part": "json", "reason": ""}, "errors": [], **extra}
    return _page(
        request,
        template,
        connection,
        state=state,
        versions=list(versions),
        map_kinds=list(MAP_KINDS.values()),
        **extra,
    )


@require_GET
@login_required
def transfer(request: HtmxHttpRequest, slug: str) -> TemplateResponse:
    """Export the rules as files, and import one into the draft."""
    return _transfer(request, _readable(request, slug))


@require_GET
@login_required
def export(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """A download: `?part=json|routing|<map kind>`, of the rules shown in the editor (the draft,
    else the version in force) or of `?version=<number>`."""
    connection = _readable(request, slug)
    exported = selectors.rules_export(
        connection=connection,
        now=timezone.now(),
        version=_number(request.GET.get("version", "")),
        part=request.GET.get("part", "json"),
    )
    if exported is None:
        raise Http404("Nothing to export: no such version or file, or no rules yet.")
    response = HttpResponse(exported.text, content_type=exported.content_type)
    response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
    return response


@require_POST
@login_required
def import_file(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Import an uploaded rules file into the draft, all or nothing: the page again with every
    problem (row and column, or line) or with what changed. With htmx, the page's #result."""
    connection = _editable(request, slug)
    part = request.POST.get("part", "json")
    form = {"part": part, "reason": _reason(request)}
    template = f"{TRANSFER_TEMPLATE}#result" if _partial(request) else TRANSFER_TEMPLATE
    upload = request.FILES.get("file")
    limit = settings.CROSSWALK_MAX_PAYLOAD_BYTES
    if part not in IMPORT_PARTS:
        errors = ["Choose what the file holds: the whole rule set, the routing rules or a map."]
    elif upload is None or not upload.size:
        errors = ["Choose a file to import: it is missing or empty."]
    elif upload.size > limit:
        errors = [f"The file is larger than {limit} bytes; split it, or import it with the API."]
    else:
        map_kind = part if part in MAP_KINDS else None
        try:
            result = rules.draft_import(
                connection=connection, data=upload.read(), source=upload.name or "a file",
                map_kind=map_kind, routing=part == "routing", actor=_actor(request),
                now=timezone.now(), reason=_reason(request),
            )  # fmt: skip
        except TransferError as error:
            errors = error.errors
        except rules.RulesError as error:
            errors = [str(error)]
        else:
            counts = selectors.import_counts(result, map_kind=map_kind, routing=part == "routing")
            if len(counts) > 1:  # a whole rule set: list the parts it changed
                counts = [count for count in counts if not count.unchanged]
            return _changed(
                _transfer(
                    request,
                    connection,
                    template,
                    imported=result.summary,
                    counts=counts,
                    filename=upload.name,
                    form={"part": part, "reason": ""},
                )  # fmt: skip
            )
    filename = upload.name if upload else ""
    return _transfer(request, connection, template, form=form, errors=errors, filename=filename)
