"""Dash html components (and ``dcc.Link``) written as an HTML string, for a part of a page that the
browser patches without React (the breaker wall's empty state, among its tiles). Escapes every
text and value.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["to_html"]

_VOID = frozenset({"img", "br", "hr", "input"})
_UNITLESS = frozenset({"opacity", "fontWeight", "zIndex", "flex", "flexGrow", "flexShrink", "lineHeight", "order"})
_ATTRIBUTES = {"className": "class", "id": "id", "title": "title", "src": "src", "href": "href", "alt": "alt"}
_KEBAB = re.compile(r"(?<!^)(?=[A-Z])")


def to_html(node: Any) -> str:
    """``node`` (a component, a string or number, a list of them, or None) as HTML."""
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return html.escape(str(node), quote=False)
    if isinstance(node, list | tuple):
        return "".join(to_html(child) for child in node)
    described = node.to_plotly_json()
    tag = "a" if described["type"] == "Link" else str(described["type"]).lower()
    props = described["props"]
    opening = f"<{tag}{_attributes(props)}>"
    return opening if tag in _VOID else f"{opening}{to_html(props.get('children'))}</{tag}>"


def _attributes(props: dict[str, Any]) -> str:
    pairs = [(_ATTRIBUTES[k], v) for k, v in props.items() if k in _ATTRIBUTES and v is not None]
    pairs += [(k, v) for k, v in props.items() if k.startswith(("data-", "aria-"))]
    if props.get("style"):
        pairs.append(("style", _style(props["style"])))
    return "".join(f' {name}="{html.escape(str(value), quote=True)}"' for name, value in pairs)


def _style(style: dict[str, Any]) -> str:
    def value(key: str, v: Any) -> str:
        return f"{v}px" if isinstance(v, int | float) and key not in _UNITLESS else str(v)

    return "; ".join(f"{_KEBAB.sub('-', k).lower()}: {value(k, v)}" for k, v in style.items())
