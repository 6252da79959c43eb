"""Two-way master data of one connection over the API (Admins of the connection): what each side
has not been told and the latest changes that lost; changes pushed in by an integration (for an
ERP Crosswalk cannot read, or a system of record of its own); send now.

A repeated push changes nothing (a side repeating itself is no change), so the pushes are safe to
retry; an Idempotency-Key replays the first answer as everywhere else.
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from console.access import get_connection_for_admin
from console.api import serializers as s
from console.api.idempotency import idempotent
from console.api.views import (
    IDEMPOTENCY_PARAMETER,
    READ_ERRORS,
    WRITE_ERRORS,
    ApiView,
    documented,
)
from masterdata.selectors import changes_lost, records_waiting
from masterdata.services import master_outbox_send, master_records_receive

WAITING_SHOWN = 100
LOST_SHOWN = 50


class MasterDataView(ApiView):
    @documented(
        operation_id="master_data_read",
        responses={200: s.MasterDataSerializer, **READ_ERRORS},
        description=f"Admin: up to {WAITING_SHOWN} records waiting to be told (newest first, "
        f"with the last error) and the {LOST_SHOWN} latest changes that lost, with both times.",
    )
    def get(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_admin(request.user, slug)
        return Response(s.MasterDataSerializer({
            "waiting": records_waiting(connection)[:WAITING_SHOWN],
            "lost": changes_lost(connection)[:LOST_SHOWN],
        }).data)  # fmt: skip


class MasterChangesView(ApiView):
    @documented(
        operation_id="master_data_changes",
        request=s.MasterChangesInput,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.MasterChangesResultSerializer, **WRITE_ERRORS},
        description="Admin: changes one side made to customers, locations or contacts, decided "
        "field by field by the ownership rules in force (docs/master-data.md). Items that "
        "cannot be taken are listed by position under `errors`; the others are taken.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_admin(request.user, slug)
        data = self.valid(s.MasterChangesInput, request.data)
        items = [{**item, "changed_at": item["changed_at"].isoformat()} for item in data["changes"]]
        taken, errors = master_records_receive(
            connection=connection, side=data["side"], entity=data["entity"], items=items,
            actor=self.actor(), now=timezone.now(),
        )  # fmt: skip
        return Response({"taken": taken, "errors": errors})


class MasterSendView(ApiView):
    @documented(
        operation_id="master_data_send",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: s.MasterSendResultSerializer, **WRITE_ERRORS},
        description="Admin: tell each side now what it has not been told (the schedule does it "
        "every few minutes). What cannot be told stays queued, with its error.",
    )
    @idempotent
    def post(self, request: Request, slug: str) -> Response:
        connection = get_connection_for_admin(request.user, slug)
        sent = master_outbox_send(connection=connection, now=timezone.now())
        return Response({"told": sent.told, "failed": sent.failed, "errors": sent.errors})
