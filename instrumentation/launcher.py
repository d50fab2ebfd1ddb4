"""``tracehouse-run``: run any Python command with zero-code tracing to Tracehouse.

Like ``opentelemetry-instrument``, it puts OpenTelemetry's ``sitecustomize`` first on
``PYTHONPATH`` and replaces itself with the command; the child then loads the ``tracehouse``
distro and configurator and every installed instrumentor. It must never import the SDK or run
user code itself: all it does is prepare the environment and ``exec`` (or, with ``--list``,
read installed package metadata and print which instrumentations apply).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path

from tracehouse.instrumentation.config import (
    DEFAULT_ENDPOINT,
    DEFAULT_PROPAGATORS,
    DEFAULT_SAMPLER_RATE,
    SAMPLERS,
    InstrumentationConfig,
    implied_sampler,
)

__all__ = ["auto_instrumentation_dir", "build_parser", "child_environment", "main"]

PROG = "tracehouse-run"
EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

# Flag destination -> variable set for the child; TRACEHOUSE_* wins over inherited OTEL_*.
_FLAG_ENV = {
    "service_name": "TRACEHOUSE_SERVICE_NAME",
    "service_version": "TRACEHOUSE_SERVICE_VERSION",
    "environment": "TRACEHOUSE_ENVIRONMENT",
    "endpoint": "TRACEHOUSE_ENDPOINT",
    "sampler": "TRACEHOUSE_SAMPLER",
    "sampler_ratio": "TRACEHOUSE_SAMPLER_RATIO",
    "sampler_rate": "TRACEHOUSE_SAMPLER_RATE",
    "propagators": "TRACEHOUSE_PROPAGATORS",
    "log_correlation": "TRACEHOUSE_LOG_CORRELATION",
}

_BOOT_PACKAGE = "opentelemetry.instrumentation.auto_instrumentation"

# A command run by a Python interpreter named so (python, python3, python3.11) is checked for OpenTelemetry.
_PYTHON = re.compile(r"python[0-9.]*")
# What the child's sitecustomize imports; exit status 1 when this interpreter cannot.
_CAN_BOOT = (
    "import importlib.util as u, sys; "
    "sys.exit(any(u.find_spec(m) is None for m in ('opentelemetry.instrumentation', 'tracehouse.instrumentation')))"
)

# Picks our entry points even when other distros or configurators are installed.
_SELECTORS = {"OTEL_PYTHON_DISTRO": "tracehouse", "OTEL_PYTHON_CONFIGURATOR": "tracehouse"}

_EPILOG = f"""\
examples:
  {PROG} --service-name orders -- python app.py
  {PROG} --service-name api --endpoint http://collector:4318 -- gunicorn app:wsgi
  {PROG} --sampler ratelimit --sampler-rate 10 -- uvicorn app:api
  {PROG} --list
  python -m tracehouse.instrumentation --service-name worker -- celery -A tasks worker

Flags override TRACEHOUSE_* variables, which override the standard OTEL_* ones
(OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_PROPAGATORS, OTEL_TRACES_SAMPLER ...).
Every installed opentelemetry-instrumentation-* package instruments its library;
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=name,... turns some off.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line: a few tracing flags, then the command (``--`` before it is optional)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [options] [--] command [args ...]",
        description="Run a Python program with OpenTelemetry tracing exported to Tracehouse, without code changes.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--service-name", metavar="NAME", help="service.name of every span")
    parser.add_argument("--service-version", metavar="VERSION", help="service.version resource attribute")
    parser.add_argument("--environment", metavar="ENV", help="deployment.environment, e.g. prod or staging")
    parser.add_argument(
        "--endpoint", metavar="URL", help=f"OTLP/HTTP base URL; spans go to URL/v1/traces (default {DEFAULT_ENDPOINT})"
    )
    _add_sampling_flags(parser)
    parser.add_argument(
        "--propagators",
        metavar="LIST",
        help=f"comma-separated propagators injected on outgoing calls: tracecontext, baggage, b3, b3multi, none ... "
        f"(default {','.join(DEFAULT_PROPAGATORS)}); W3C, B3 and baggage are read whatever the choice, "
        "none reads nothing",
    )
    parser.add_argument(
        "--log-correlation",
        action=argparse.BooleanOptionalAction,
        help="trace_id, span_id, trace_sampled and service_name on every logging record, and "
        "[service,trace_id,span_id] in the default log format (default on)",
    )
    parser.add_argument(
        "--list", action="store_true", help="show the active instrumentations and those missing, then exit"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program to run and its arguments")
    return parser


def _add_sampling_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="how new traces are chosen: at most --sampler-rate a second, a --sampler-ratio of them, "
        "all or none; a caller's decision is always followed (default always_on)",
    )
    parser.add_argument(
        "--sampler-rate",
        metavar="N",
        type=float,
        help=f"new traces per second kept by the ratelimit sampler (default {DEFAULT_SAMPLER_RATE:g})",
    )
    parser.add_argument(
        "--sampler-ratio", metavar="R", type=float, help="fraction of new traces kept by the ratio sampler, 0..1"
    )


def auto_instrumentation_dir() -> str:
    """The directory holding OpenTelemetry's ``sitecustomize.py``, which boots instrumentation."""
    # find_spec locates the package without running it (running it would load entry points).
    spec = find_spec(_BOOT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{_BOOT_PACKAGE} is not installed; install opentelemetry-instrumentation")
    return str(Path(spec.submodule_search_locations[0]).resolve())


def child_environment(args: argparse.Namespace, environ: Mapping[str, str], cwd: str) -> dict[str, str]:
    """The environment of the command: tracing flags, entry-point selectors, ``PYTHONPATH``."""
    env = dict(environ)
    for dest, name in _FLAG_ENV.items():
        value = getattr(args, dest)
        if value is not None:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    if args.sampler is None:
        # A rate or ratio flag beats a TRACEHOUSE_SAMPLER inherited from the environment.
        implied = implied_sampler(args.sampler_ratio, args.sampler_rate)
        if implied is not None:
            env["TRACEHOUSE_SAMPLER"] = implied
    env.update(_SELECTORS)
    env["PYTHONPATH"] = _python_path(env.get("PYTHONPATH", ""), auto_instrumentation_dir(), cwd)
    return env


def _python_path(current: str, boot_dir: str, cwd: str) -> str:
    """``boot_dir`` first, then ``cwd`` if absent (for apps started by their own executable), exactly
    as ``opentelemetry-instrument`` does."""
    paths = [path for path in current.split(os.pathsep) if path]
    if cwd not in paths:
        paths.insert(0, cwd)
    return os.pathsep.join([boot_dir, *(path for path in paths if path != boot_dir)])


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, prepare the environment and ``exec`` the command; returns only on error or ``--list``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        return _print_inventory()
    command = _command(args.command)
    if not command:
        parser.error("no command given")
    try:
        env = child_environment(args, os.environ, os.getcwd())
        InstrumentationConfig.from_env(env).validate()
    except ValueError as exc:
        parser.error(str(exc))
    return _exec(command, env)


def _print_inventory() -> int:
    # Imported here: it reads the metadata of every installed distribution, which a launch does not need.
    from tracehouse.instrumentation.inventory import render_inventory

    print(render_inventory(os.environ))
    return 0


def _command(remainder: Sequence[str]) -> list[str]:
    return list(remainder[1:] if remainder[:1] == ["--"] else remainder)


def _exec(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Exec as a shell would: a name with a slash is a path, anything else is looked up on ``PATH``;
    126 for a file that cannot be run, 127 for none, with the shell's reason."""
    executable = command[0] if os.sep in command[0] else shutil.which(command[0], path=env.get("PATH", os.defpath))
    if executable is None:
        print(f"{PROG}: command not found: {command[0]}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if _cannot_boot(executable, env):
        # Its sitecustomize would only fail ("Error in sitecustomize … No module named …"): leave it out.
        env = {**env, "PYTHONPATH": _without_boot_dir(env)}
    try:
        os.execve(executable, [executable, *command[1:]], env)  # noqa: S606 - exec without a shell is the point
    except OSError as exc:
        reason = "Is a directory" if os.path.isdir(executable) else exc.strerror
        print(f"{PROG}: {command[0]}: {reason}", file=sys.stderr)
        return EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE


def _cannot_boot(executable: str, env: Mapping[str, str]) -> bool:
    """Whether the command is a Python interpreter other than ours that cannot import OpenTelemetry
    and Tracehouse, said in one line: the program then runs untraced.

    One of ours (same directory) is not checked; another costs one short interpreter start."""
    if not _PYTHON.fullmatch(Path(executable).name):
        return False
    if Path(executable).absolute().parent == Path(sys.executable).absolute().parent:
        return False
    try:
        # Without the boot directory: the check must not start tracing.
        check = subprocess.run(
            [executable, "-c", _CAN_BOOT],
            env={**env, "PYTHONPATH": _without_boot_dir(env)},
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if check.returncode == 0:
        return False
    print(
        f"{PROG}: warning: {executable} cannot import opentelemetry or tracehouse, so the program runs untraced; "
        f"activate the virtualenv of {PROG} ({sys.prefix}), run {sys.executable} instead, "
        f"or install tracehouse into {executable}",
        file=sys.stderr,
    )
    return True


def _without_boot_dir(env: Mapping[str, str]) -> str:
    """``PYTHONPATH`` without OpenTelemetry's sitecustomize directory."""
    boot = auto_instrumentation_dir()
    return os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != boot)
