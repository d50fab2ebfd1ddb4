"""Command-line options that are also `TRACEHOUSE_*` environment variables.

Precedence: flag > environment > default. Each option is declared once, with its help
text, so `--help` and the environment documentation cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    help: str
    default: Any
    parse: Callable[[str], Any] = str
    metavar: str | None = None
    default_text: str | None = None  # how --help describes a computed default

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return "TRACEHOUSE_" + self.dest.upper()


_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}  # fmt: skip


def byte_size(text: str) -> int:
    """A number of bytes: ``268435456``, or as ``--help`` shows them, ``256 MiB``, ``1GiB``, ``1.5 GB``
    (KiB/MiB/GiB/TiB and a bare K/M/G/T are powers of 1024, kB/MB/GB/TB of 1000)."""
    number = text.strip().rstrip("bBiI" + "kKmMgGtT" + " ")
    unit = text.strip()[len(number) :].strip().lower()
    if unit not in _BYTE_UNITS:
        raise ValueError(f"{text!r} is not a size: a number of bytes, or one with KiB, MiB, GiB or TiB")
    size = float(number) * _BYTE_UNITS[unit]
    if not size.is_integer() or size < 0:
        raise ValueError(f"{text!r} is not a whole, non-negative number of bytes")
    return int(size)


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    for option in options:
        default = option.default_text or option.default
        parser.add_argument(
            option.flag,
            dest=option.dest,
            default=None,
            type=option.parse,
            metavar=option.metavar,
            help=f"{option.help} [env {option.env}; default {default}]",
        )


def resolve(
    args: argparse.Namespace, options: Sequence[Option], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Option values by dest: the flag if given, else the environment, else the default.
    A default that is callable gets the values resolved so far (for derived defaults)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in options:
        value = getattr(args, option.dest, None)
        if value is None and environ.get(option.env, "") != "":
            value = _from_env(option, environ[option.env])
        if value is None:
            value = option.default(values) if callable(option.default) else option.default
        values[option.dest] = value
    return values


def _from_env(option: Option, text: str) -> Any:
    try:
        return option.parse(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{option.env}={text!r} is not valid for {option.flag}: {exc}") from None
