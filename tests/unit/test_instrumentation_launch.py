"""``tracehouse-run`` when the command cannot run as asked: a path that is not executable fails as
in a shell (126, "Permission denied"), and a ``python`` that is not tracehouse-run's own, lacking
OpenTelemetry, gets a one-line warning saying what to do (the program still runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracehouse.instrumentation import launcher

WARNING = "cannot import opentelemetry or tracehouse, so the program runs untraced"


def test_a_path_that_is_not_executable_exits_126_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "script.py"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    monkeypatch.chdir(tmp_path)
    assert launcher.main(["./script.py"]) == launcher.EXIT_NOT_EXECUTABLE == 126
    assert capsys.readouterr().err.strip() == "tracehouse-run: ./script.py: Permission denied"


def test_a_path_that_does_not_exist_exits_127(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert launcher.main(["./missing.py"]) == launcher.EXIT_NOT_FOUND
    assert capsys.readouterr().err.strip() == "tracehouse-run: ./missing.py: No such file or directory"


def run_python_on_path(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """``tracehouse-run -- python -c ...`` with ``bin_dir`` first on ``PATH``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEHOUSE_", "VIRTUAL_ENV"))}
    env |= {
        "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)]),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/",
        "TRACEHOUSE_REPORT_BREAKERS": "false",
    }
    command = [sys.executable, "-m", "tracehouse.instrumentation", "--", "python", "-c", "print('ran')"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_python_without_opentelemetry_is_named_with_what_to_do(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    result = run_python_on_path(bare / "bin")
    assert result.stdout == "ran\n"
    warnings = [line for line in result.stderr.splitlines() if WARNING in line]
    assert len(warnings) == 1, result.stderr
    assert f"activate the virtualenv of tracehouse-run ({sys.prefix})" in warnings[0]
    assert f"install tracehouse into {bare / 'bin' / 'python'}" in warnings[0]
    assert "Error in sitecustomize" not in result.stderr  # the warning is the only line


def test_tracehouse_runs_own_python_gets_no_warning() -> None:
    result = run_python_on_path(Path(sys.executable).parent)
    assert result.stdout == "ran\n"
    assert WARNING not in result.stderr
    assert "Error in sitecustomize" not in result.stderr
