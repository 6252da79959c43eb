"""Fixtures around the fake ServiceTrade (syncengine/sources/servicetrade_api/fake.py): the
server on a real socket, a client to it, and a connection whose source points at it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from syncengine.connections import connection_credentials_set
from syncengine.models import Connection
from syncengine.sources.servicetrade_api import client as st_client
from syncengine.sources.servicetrade_api.fake import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    USERNAME,
    FakeServiceTrade,
    served,
)

CREDENTIALS = {
    "oauth2_client_credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    "oauth2_password": {"client_id": CLIENT_ID, "username": USERNAME, "password": PASSWORD},
    "oauth2_refresh_token": {"client_id": CLIENT_ID, "refresh_token": "fake-refresh-token-0"},
    "session": {"username": USERNAME, "password": PASSWORD},
}


@pytest.fixture
def fake_st() -> Iterator[FakeServiceTrade]:
    """A running fake ServiceTrade; webhook retries 0 s apart so tests stay fast."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    st_client.forget_cached_tokens()
    fake = FakeServiceTrade()
    fake.webhook_retry_seconds = 0
    with served(fake):
        yield fake
    st_client.forget_cached_tokens()


class Sleeps(list[float]):
    """Stands in for time.sleep: remembers each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def st_settings(fake: FakeServiceTrade, **changes: Any) -> st_client.StSettings:
    values: dict[str, Any] = {"base_url": fake.api_url, "timeout_seconds": 5, "max_attempts": 4,
                              "backoff_base_seconds": 0.5, **changes}  # fmt: skip
    return st_client.StSettings.of(values)


def make_client(
    fake: FakeServiceTrade, *, auth_mode: str = "oauth2_client_credentials", **changes: Any
) -> tuple[st_client.ServiceTradeClient, Sleeps]:
    sleeps = Sleeps()
    client = st_client.ServiceTradeClient(
        settings=st_settings(fake, auth_mode=auth_mode, **changes),
        secrets=CREDENTIALS[auth_mode], sleep=sleeps,
    )  # fmt: skip
    return client, sleeps


def st_connection(
    connection: Connection, fake: FakeServiceTrade, *, auth_mode: str = "oauth2_client_credentials",
    **settings: Any,
) -> Connection:  # fmt: skip
    """The demo connection reading from the fake through the API."""
    connection.source_settings = {"api": True, "base_url": fake.api_url, "auth_mode": auth_mode,
                                  "timeout_seconds": 5, "max_attempts": 3,
                                  "backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.02,
                                  **settings}  # fmt: skip
    connection.save(update_fields=["source_settings"])
    return connection_credentials_set(
        connection=connection, side="source", values=CREDENTIALS[auth_mode], actor="test",
        now=datetime(2026, 11, 20, tzinfo=UTC),
    )  # fmt: skip
