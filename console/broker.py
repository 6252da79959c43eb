"""The embedded default broker: kombu's filesystem transport, with messages written atomically.

kombu writes a message file in place and its reader does not take the writer's lock, so a worker
can read a half-written (empty) file and die on the JSON error (celery/kombu#1551). Here each
message is written under a name the reader ignores (no dot) and renamed into place, which POSIX
makes atomic within one folder.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu declares _put twice with different signatures; this matches the filesystem one.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"writing-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from error


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make `filesystem://` URLs use this transport (called when the Celery app loads)."""
    TRANSPORT_ALIASES["filesystem"] = "console.broker:Transport"
