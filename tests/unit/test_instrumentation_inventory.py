"""Unit tests of ``tracehouse-run --list``: read from the real package metadata of this environment.

The dev install has the FastAPI and httpx instrumentations (the demo needs them) and pytest;
no test depends on what else happens to be installed.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest

from tracehouse.instrumentation import launcher
from tracehouse.instrumentation.inventory import (
    ACTIVE,
    DISABLED,
    NOT_INSTALLED,
    STDLIB,
    Instrumentation,
    Suggestion,
    installed_instrumentations,
    missing_instrumentations,
    render_inventory,
)


def by_name(environ: dict[str, str] | None = None) -> dict[str, Instrumentation]:
    return {item.name: item for item in installed_instrumentations(environ or {})}


def test_installed_instrumentations_of_present_libraries_are_active() -> None:
    found = by_name()
    assert found["fastapi"].status == found["httpx"].status == ACTIVE
    assert (
        found["fastapi"].package
        == f"opentelemetry-instrumentation-fastapi {version('opentelemetry-instrumentation-fastapi')}"
    )
    assert found["fastapi"].libraries == f"fastapi {version('fastapi')}"
    assert found["httpx"].libraries == f"httpx {version('httpx')}"


def test_an_instrumentor_named_after_an_absent_library_is_not_active() -> None:
    # opentelemetry-instrumentation-httpx also holds the instrumentor of httpx2, which is not installed.
    found = by_name()
    # If a newer opentelemetry-instrumentation-httpx drops httpx2, pick another such instrumentor here.
    assert "httpx2" in found, "opentelemetry-instrumentation-httpx no longer declares an httpx2 instrumentor"
    assert (found["httpx2"].status, found["httpx2"].libraries) == (NOT_INSTALLED, "httpx2 >=2.0.0")


@pytest.mark.parametrize(("disabled", "expected"), [(" fastapi ,requests", {"fastapi"}), ("*", {"fastapi", "httpx"})])
def test_disabled_instrumentations(disabled: str, expected: set[str]) -> None:
    found = by_name({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled})
    assert {name for name in ("fastapi", "httpx") if found[name].status == DISABLED} == expected


def test_missing_instrumentations_of_installed_libraries() -> None:
    pytest_version = version("pytest")
    table = [
        {"library": "pytest >= 1", "instrumentation": "opentelemetry-instrumentation-tracehouse-test==0.1"},
        {"library": "pluggy", "instrumentation": "opentelemetry-instrumentation-tracehouse-test==0.1"},
        {"library": "pytest < 1", "instrumentation": "opentelemetry-instrumentation-too-old==0.1"},
        {"library": "tracehouse-no-such-library", "instrumentation": "opentelemetry-instrumentation-absent==0.1"},
        {"library": "fastapi", "instrumentation": "opentelemetry-instrumentation-fastapi"},  # installed
        {"library": "not a requirement !", "instrumentation": "opentelemetry-instrumentation-broken"},
    ]
    defaults = ["opentelemetry-instrumentation-tracehouse-stdlib==0.1", "opentelemetry-instrumentation-logging==0.1"]
    assert missing_instrumentations(table, defaults) == [
        Suggestion("opentelemetry-instrumentation-tracehouse-stdlib==0.1", STDLIB),
        Suggestion(
            "opentelemetry-instrumentation-tracehouse-test==0.1",
            f"pytest {pytest_version}, pluggy {version('pluggy')}",
        ),
    ]


def test_render_inventory_aligns_the_tables() -> None:
    text = render_inventory({})
    lines = text.splitlines()
    assert lines[0] == "Installed instrumentations (entry points 'opentelemetry_instrumentor'):"
    header = lines[1]
    assert header.split() == ["NAME", "STATUS", "PACKAGE", "LIBRARY"]
    fastapi = next(line for line in lines if line.split()[:2] == ["fastapi", "active"])
    assert fastapi.index("opentelemetry-instrumentation-fastapi") == header.index("PACKAGE")
    assert "Missing instrumentations for libraries that are installed:" in lines


def test_list_flag_needs_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert launcher.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Installed instrumentations")
