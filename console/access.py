"""Who may see and do what: roles are Django groups, and access is granted per connection.

Every view goes through these helpers; an object on a connection the user cannot see is a 404
(its existence is not revealed), an action the user's role does not allow is a 403.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from syncengine.models import Connection, SyncRecord, SyncRecordQuerySet


class Role:
    ADMIN = "Admin"
    FINANCE = "Finance"
    AR = "AR"
    ALL = (ADMIN, FINANCE, AR)


def roles_of(user: Any) -> set[str]:
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return set(Role.ALL)
    return set(user.groups.filter(name__in=Role.ALL).values_list("name", flat=True))


def require_role(user: Any, *roles: str) -> None:
    if not roles_of(user) & set(roles):
        raise PermissionDenied(f"This needs the {' or '.join(roles)} role.")


def connections_for(user: Any) -> QuerySet[Connection]:
    if user.is_superuser:
        return Connection.objects.all()
    if not roles_of(user):
        return Connection.objects.none()
    return Connection.objects.filter(members=user)


def records_for(user: Any) -> SyncRecordQuerySet:
    return SyncRecord.objects.filter(connection__in=connections_for(user))


def get_record_for_user(user: Any, pk: int) -> SyncRecord:
    record = records_for(user).select_related("connection", "document").filter(pk=pk).first()
    if record is None:
        raise Http404("No such sync record.")
    return record


def get_connection_for_user(user: Any, slug: str) -> Connection:
    connection = connections_for(user).filter(slug=slug).first()
    if connection is None:
        raise Http404("No such connection.")
    return connection


def get_connection_for_admin(user: Any, slug: str) -> Connection:
    """The connection, for an Admin of it. 404 before 403: a connection the user cannot see is
    not revealed by the role check."""
    connection = get_connection_for_user(user, slug)
    require_role(user, Role.ADMIN)
    return connection
