"""Which connector class serves which `Connection.target`."""

from __future__ import annotations

from syncengine.erps.base import Connector
from syncengine.models import Connection


def connector_for(connection: Connection) -> Connector:
    if connection.target == Connection.Target.SANDBOX:
        from syncengine.erps.sandbox.client import SandboxLedger

        return SandboxLedger(connection=connection)
    raise LookupError(f"No connector for target {connection.target!r}")
