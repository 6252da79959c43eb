"""Logging filters. Hook URLs carry their secret in the path (ServiceTrade signs nothing), and
Django logs request paths, so every line passes through `RedactHookSecrets` before it is written."""

from __future__ import annotations

import logging
import re

HOOK_SECRET = re.compile(r"(/hooks/[^/\s]+/[^/\s]+/)[^/\s?\"']+")


def redact(text: str) -> str:
    return HOOK_SECRET.sub(r"\1[redacted]", text)


class RedactHookSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/hooks/" in message:
            record.msg = redact(message)
            record.args = ()
        return True
