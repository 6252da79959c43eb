"""Keyset pagination on the primary key: one row more than a page tells whether there is a next
page, and `next` is this URL with the cursor moved; no COUNT, and pages stay stable while rows
are added."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from rest_framework.request import Request

M = TypeVar("M", bound=Model)


def keyset_page(
    request: Request, rows: QuerySet[M], *, size: int, cursor: str, descending: bool
) -> tuple[list[M], str | None]:
    """A page of `rows` after the cursor in the query string (`?<cursor>=<id>`), and the URL of
    the next page or None. Newest first when `descending` (cursor "before"), else oldest first."""
    value: Any = request.query_params.get(cursor)
    if value is not None:  # validated by the view's input serializer before this runs
        rows = rows.filter(pk__lt=int(value)) if descending else rows.filter(pk__gt=int(value))
    page = list(rows.order_by("-pk" if descending else "pk")[: size + 1])
    if len(page) <= size:
        return page, None
    page = page[:size]
    query = request.query_params.copy()
    query[cursor] = str(page[-1].pk)
    return page, request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
