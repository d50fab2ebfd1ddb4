"""``tracehouse-run --list``: which instrumentations apply to this environment, and which are missing.

Reads package metadata only, the way ``opentelemetry-instrument`` and ``opentelemetry-bootstrap``
decide: the ``opentelemetry_instrumentor`` entry points with their distributions' ``instruments``
requirements, and the bootstrap table of library -> instrumentation package. It must never import
an instrumentor or an instrumented library (that would run their import-time code) nor install anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, PackageNotFoundError, entry_points, version

from opentelemetry.instrumentation.bootstrap_gen import default_instrumentations, libraries
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = [
    "Instrumentation",
    "Suggestion",
    "installed_instrumentations",
    "missing_instrumentations",
    "render_inventory",
]

GROUP = "opentelemetry_instrumentor"
ACTIVE, DISABLED, NOT_INSTALLED, CONFLICT = "active", "disabled", "library not installed", "version conflict"
STDLIB = "(standard library)"
_INSTRUMENTS_EXTRAS = ("instruments", "instruments-any")
# Tracehouse correlates logs itself; that package would also add a log-export handler to the root logger.
_NOT_SUGGESTED = frozenset({"opentelemetry-instrumentation-logging"})


@dataclass(frozen=True, slots=True)
class Instrumentation:
    """One installed instrumentor entry point and whether ``tracehouse-run`` would apply it."""

    name: str
    package: str
    status: str
    libraries: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    """An instrumentation package that is not installed although its library is."""

    package: str
    libraries: str


def installed_instrumentations(environ: Mapping[str, str]) -> list[Instrumentation]:
    """Every ``opentelemetry_instrumentor`` entry point, sorted by name.

    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` in ``environ`` marks entries ``disabled`` as the loader skips them.
    """
    disabled = {name.strip() for name in environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    found = [_describe(ep, disabled) for ep in entry_points(group=GROUP)]
    return sorted(found, key=lambda item: (item.name, item.package))


def _describe(ep: EntryPoint, disabled: set[str]) -> Instrumentation:
    dist = ep.dist
    if dist is None:  # not from an installed distribution: the loader still tries it
        return Instrumentation(ep.name, "?", DISABLED if _is_disabled(ep.name, disabled) else ACTIVE, "")
    requirements = _instrumented(dist)
    named = _named_after(ep.name, requirements)
    return Instrumentation(
        name=ep.name,
        package=f"{dist.metadata['Name']} {dist.version}",
        status=_status(ep.name, dist, named, disabled),
        libraries=", ".join(_library(req) for req in named or requirements),
    )


def _is_disabled(name: str, disabled: set[str]) -> bool:
    return name in disabled or "*" in disabled


def _status(name: str, dist: Distribution, named: list[Requirement], disabled: set[str]) -> str:
    if _is_disabled(name, disabled):
        return DISABLED
    conflict = get_dist_dependency_conflicts(dist)  # the very check the loader makes
    if conflict is not None:
        return CONFLICT if conflict.found or conflict.found_any else NOT_INSTALLED
    # One package can hold instrumentors of several libraries (httpx and httpx2): an entry point
    # named after one of them applies only when that one is installed.
    return NOT_INSTALLED if named and not any(_installed(req) for req in named) else ACTIVE


def _named_after(name: str, requirements: list[Requirement]) -> list[Requirement]:
    return [req for req in requirements if canonicalize_name(req.name) == canonicalize_name(name)]


def _instrumented(dist: Distribution) -> list[Requirement]:
    """The requirements a distribution declares under its ``instruments`` / ``instruments-any`` extras."""
    requirements = (_requirement(line) for line in dist.requires or ())
    return [req for req in requirements if req is not None and _for_instruments(req)]


def _for_instruments(req: Requirement) -> bool:
    return req.marker is not None and any(req.marker.evaluate({"extra": extra}) for extra in _INSTRUMENTS_EXTRAS)


def _library(req: Requirement) -> str:
    try:
        return f"{req.name} {version(req.name)}"
    except PackageNotFoundError:
        return f"{req.name} {req.specifier}".strip()


def missing_instrumentations(
    table: Iterable[Mapping[str, str]] = libraries, defaults: Sequence[str] = default_instrumentations
) -> list[Suggestion]:
    """Packages ``opentelemetry-bootstrap`` would install that are not installed, sorted by package.

    ``table`` rows map a ``library`` requirement to an ``instrumentation`` requirement; ``defaults``
    instrument the standard library and always apply.
    """
    wanted: dict[str, list[str]] = {}
    for package, library in _applicable(table, defaults):
        req = _requirement(package)
        if req is not None and req.name not in _NOT_SUGGESTED and not _is_installed(req.name):
            wanted.setdefault(package, []).append(library)
    by_name = sorted(wanted.items(), key=lambda item: Requirement(item[0]).name)
    return [Suggestion(package, ", ".join(dict.fromkeys(libs))) for package, libs in by_name]


def _applicable(table: Iterable[Mapping[str, str]], defaults: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(instrumentation package, installed library) for every library present in a supported version."""
    for package in defaults:
        yield package, STDLIB
    for row in table:
        req = _requirement(row["library"])
        if req is not None and _installed(req):
            yield row["instrumentation"], f"{req.name} {version(req.name)}"


def _requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _installed(req: Requirement) -> bool:
    """Whether a version of ``req`` that it accepts (pre-releases included) is installed."""
    try:
        return req.specifier.contains(version(req.name), prereleases=True)
    except PackageNotFoundError:
        return False


def _is_installed(name: str) -> bool:
    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


def render_inventory(environ: Mapping[str, str]) -> str:
    """The ``--list`` report: two tables and the command that installs what is missing."""
    active = installed_instrumentations(environ)
    missing = missing_instrumentations()
    lines = ["Installed instrumentations (entry points 'opentelemetry_instrumentor'):"]
    rows = [(i.name, i.status, i.package, i.libraries) for i in active]
    lines += _table(("NAME", "STATUS", "PACKAGE", "LIBRARY"), rows) if rows else ["  none"]
    lines += ["", "Missing instrumentations for libraries that are installed:"]
    lines += _table(("PACKAGE", "FOR"), [(s.package, s.libraries) for s in missing]) if missing else ["  none"]
    if missing:
        lines += ["", "Install them with:", "  pip install " + " ".join(f"'{s.package}'" for s in missing)]
    return "\n".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header))]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
