"""Which connector class serves which `Connection.target`, and what each one needs set."""

from __future__ import annotations

from django.conf import settings

from syncengine.erps.base import Connector
from syncengine.models import Connection


def connector_for(connection: Connection) -> Connector:
    if connection.target == Connection.Target.SANDBOX:
        if settings.CROSSWALK_SANDBOX_FAULTS:
            from syncengine.erps.sandbox.faults import FaultySandboxLedger

            return FaultySandboxLedger(connection=connection)
        from syncengine.erps.sandbox.client import SandboxLedger

        return SandboxLedger(connection=connection)
    if connection.target == Connection.Target.BUSINESS_CENTRAL:
        from syncengine.erps.business_central.client import BusinessCentral

        return BusinessCentral(connection=connection)
    raise LookupError(f"No connector for target {connection.target!r}")


def erp_settings_class(target: str) -> type:
    """The dataclass a target's `Connection.erp_settings` are read into."""
    if target == Connection.Target.BUSINESS_CENTRAL:
        from syncengine.erps.business_central.http import BcSettings

        return BcSettings
    # The sandbox has no connector settings of its own, only the posting policies.
    from syncengine.plans import PostingPolicy

    return PostingPolicy


def erp_secret_names(target: str) -> tuple[str, ...]:
    """The credential fields a target's connector reads from `Connection.erp_secrets()`."""
    if target == Connection.Target.BUSINESS_CENTRAL:
        return ("client_id", "client_secret")
    return ()
