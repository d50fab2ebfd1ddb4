"""A service installs only the base distribution: `tracehouse.instrumentation` and
`tracehouse-run` must work there without any server dependency."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SERVER_MODULES = ("clickhouse_connect", "chdb", "dash", "fastapi", "uvicorn", "grpc", "starlette")
CHECK = f"""
import importlib.util, sys
import tracehouse.instrumentation
loaded = [m for m in {SERVER_MODULES!r} if m in sys.modules]
installed = [m for m in {SERVER_MODULES!r} if importlib.util.find_spec(m) is not None]
assert not loaded and not installed, (loaded, installed)
print("base install ok")
"""


def test_instrumentation_imports_with_only_the_base_install(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "tests"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", "--progress-bar", "off", str(source)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run(
        [venv / "bin" / "python", "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "base install ok"
    launcher = subprocess.run([venv / "bin" / "tracehouse-run", "--help"], capture_output=True, text=True, timeout=120)
    assert launcher.returncode == 0, launcher.stderr
    assert "usage: tracehouse-run" in launcher.stdout
    listing = subprocess.run([venv / "bin" / "tracehouse-run", "--list"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
