"""Griffe extension for the manual: the docstrings' Sphinx roles as cross-references.

The library's docstrings are numpydoc and name other objects with Sphinx roles
(``:class:`~flwr_stellar.ledger.base.Ledger```). Markdown has no roles, so mkdocstrings would
print them as text; this extension turns each into an optional autorefs link (a link where the
object is in the API reference, plain code where it is not: never a broken link) and an RST
literal-block marker (a paragraph ending in ``::``) into a colon, before the docstrings are
rendered. The source files are not touched.
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):"
    r"`(?P<tilde>~?)(?:(?P<title>[^`<]+?)\s*<(?P<target>[^`>]+)>|(?P<name>[^`]+?))(?:\(\))?`"
)
LITERAL_MARKER = re.compile(r"(?<=\S)::[ \t]*\n(?=[ \t]*\n)")


def convert(text: str) -> str:
    """``text`` with every Sphinx role a ``<autoref optional>`` and ``::`` markers as ``:``."""

    def link(match: re.Match[str]) -> str:
        target = (match["target"] or match["name"]).strip().lstrip(".")
        title = match["title"] or (target.rsplit(".", 1)[-1] if match["tilde"] else target)
        return (
            f'<autoref identifier="{html.escape(target)}" optional>'
            f"<code>{html.escape(title)}</code></autoref>"
        )

    return LITERAL_MARKER.sub(":\n", ROLE.sub(link, text))


class SphinxRoles(Extension):
    """Rewrites each object's docstring once the object tree is complete."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
