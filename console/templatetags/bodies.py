"""Template filters for the bodies of ERP calls kept on sync events."""

from __future__ import annotations

from django import template

from syncengine.erps import wire

register = template.Library()


@register.filter
def indented(body: str | None) -> str:
    """A JSON body indented for reading; any other text (a form, a cut-off body) as it is.

    Bodies are kept compact (docs/operations.md, the record page's ERP calls): indenting them
    on every posting would cost more than indenting the few a person opens."""
    if not body:
        return ""
    try:
        return wire.dumps(wire.loads(body), indent=2)
    except ValueError:
        return body
