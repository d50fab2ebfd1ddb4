"""Autocomplete of the trace search's attribute expressions (``key=value``, ``key!=value``,
``key=~regex``, ``key``, ``!key``): what to offer for the line being typed, from the keys and
values the query API has seen. One API request per keystroke at most; never a guess of our own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracehouse.query.client import QueryClient

__all__ = ["MAX_SUGGESTIONS", "Typed", "key_suggestions", "parse_typed", "suggest", "value_suggestions"]

MAX_SUGGESTIONS = 10


@dataclass(frozen=True, slots=True)
class Typed:
    """A half-typed expression: ``op`` is None while the key is still being typed."""

    key: str
    op: str | None = None
    value: str = ""
    negated: bool = False


def parse_typed(line: str) -> Typed:
    """Reads a line as the API's attribute parser does (query/params.py `parse_attribute`)."""
    if "=" not in line:
        negated = line.startswith("!")
        return Typed(line[1:] if negated else line, negated=negated)
    key, _, value = line.partition("=")
    if key.endswith("!"):
        return Typed(key[:-1], "!=", value)
    if value.startswith("~"):
        return Typed(key, "=~", value[1:])
    return Typed(key, "=", value)


def key_suggestions(typed: Typed, keys: list[str]) -> list[str]:
    """Keys containing what was typed (prefix matches first, then the API's most-frequent-first
    order), each ready for its value (``key=``) or, after ``!``, as the absence test."""
    needle = typed.key.strip().lower()
    matching = [k for k in keys if needle in k.lower()]
    ranked = sorted(matching, key=lambda k: not k.lower().startswith(needle))[:MAX_SUGGESTIONS]
    return [f"!{k}" for k in ranked] if typed.negated else [f"{k}=" for k in ranked]


def value_suggestions(typed: Typed, values: list[str]) -> list[str]:
    """Whole expressions with the typed key and operator; for a regex, the value anchored and escaped."""
    if typed.op == "=~":
        return [f"{typed.key}=~^{re.escape(v)}$" for v in values[:MAX_SUGGESTIONS]]
    return [f"{typed.key}{typed.op}{v}" for v in values[:MAX_SUGGESTIONS]]


async def suggest(client: QueryClient, line: str, params: dict[str, str]) -> list[str]:
    """Suggestions for the typed `line` (an empty key gets none); `params` narrow the API's sample
    (``service``, ``start``, ``end``)."""
    typed = parse_typed(line.lstrip())
    if not typed.key.strip():
        return []
    if typed.op is None:
        found = await client.attribute_keys(params)
        return key_suggestions(typed, list(dict.fromkeys(k["key"] for k in found)))  # span and resource: once
    prefix = "" if typed.op == "=~" else typed.value
    values = await client.attribute_values(typed.key, {**params, "prefix": prefix})
    return value_suggestions(typed, [v["value"] for v in values])
