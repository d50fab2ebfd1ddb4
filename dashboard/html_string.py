"""Dash html components (and ``dcc.Link``) written as an HTML string, for a part of a page that the
browser patches without React (the breaker wall's empty state, among its tiles), and the two
pieces to write such HTML directly where building components first costs too much (the search
results). Escapes every text and value.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

__all__ = ["in_app_clicks", "tag", "text", "to_html"]

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


def tag(name: str, attributes: dict[str, str], *children: str) -> str:
    """``<name attributes>children</name>``: the attribute values escaped, the children already HTML."""
    pairs = "".join(f' {key}="{html.escape(value, quote=True)}"' for key, value in attributes.items())
    return f"<{name}{pairs}>{''.join(children)}</{name}>"


def text(value: object) -> str:
    """A text or number as HTML."""
    return html.escape(str(value), quote=False)


def in_app_clicks(selector: str) -> str:
    """A script statement: a plain click on a link matching ``selector`` (CSS) navigates inside the
    Dash app, as a ``dcc.Link`` does, for links written as HTML; with a modifier key or another
    button it is the browser's (a new tab, say)."""
    return """document.addEventListener("click", (event) => {
      const link = event.target.closest ? event.target.closest(SELECTOR) : null;
      if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      window.history.pushState({}, "", link.getAttribute("href"));
      window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
      window.scrollTo(0, 0);
    });""".replace("SELECTOR", json.dumps(selector))
