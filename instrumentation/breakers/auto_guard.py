"""Enforcing auto-breakers: httpx and requests ask the destination's breaker before each request.

An open destination's request is refused at once with an exception that is both a
:class:`CallNotPermitted` and the library's own transport error (``httpx.TransportError``,
``requests.ConnectionError``), so existing error handling keeps working. A 5xx answer or a
transport error counts as a failure. Installed once; libraries that are not installed are skipped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

from tracehouse.instrumentation.breakers.auto import AutoBreakers
from tracehouse.instrumentation.breakers.breaker import Admission, BreakerCore
from tracehouse.instrumentation.breakers.errors import CallNotPermitted
from tracehouse.instrumentation.breakers.window import Outcome

__all__ = ["GUARDED_SCOPES", "guard_http_clients"]

_log = logging.getLogger("tracehouse.breakers")
#: Instrumentation scopes whose client spans the guard counts itself (the span processor skips them).
GUARDED_SCOPES = frozenset({"opentelemetry.instrumentation.httpx", "opentelemetry.instrumentation.requests"})
_installed: set[str] = set()


def guard_http_clients(breakers: AutoBreakers) -> list[str]:
    """Patch the HTTP clients that are importable; returns the names of those guarded."""
    guarded = []
    for name, install in (("httpx", _guard_httpx), ("requests", _guard_requests)):
        if name in _installed:
            continue
        try:
            install(breakers)
        except ImportError:
            continue
        _installed.add(name)
        guarded.append(name)
    return guarded


def _where(host: str, port: int | None, scheme: str) -> str:
    return f"{host}:{port or {'http': 80, 'https': 443}.get(scheme, 0)}"


def _admit(breaker: BreakerCore, refuse: Callable[[str], BaseException]) -> Admission:
    admission = breaker.admit(pool=False)
    if admission.refused is not None:
        raise refuse(f"circuit open for {breaker.name}: request not sent")
    return admission


def _done(breaker: BreakerCore, admission: Admission, start: float, status: int | None) -> None:
    failed = status is None or status >= 500
    breaker.complete(admission, Outcome.FAILURE if failed else Outcome.SUCCESS, (perf_counter() - start) * 1000)


def _guard_httpx(breakers: AutoBreakers) -> None:
    import httpx

    class Refused(CallNotPermitted, httpx.TransportError):
        def __init__(self, breaker: str, message: str, request: httpx.Request) -> None:
            CallNotPermitted.__init__(self, breaker, message)
            self._request = request

    def breaker_of(request: httpx.Request) -> BreakerCore:
        url = request.url
        return breakers.get(_where(url.host, url.port, url.scheme))

    sync_send = httpx.HTTPTransport.handle_request

    @functools.wraps(sync_send)
    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        breaker = breaker_of(request)
        admission = _admit(breaker, lambda m: Refused(breaker.name, m, request))
        start = perf_counter()
        try:
            response = sync_send(self, request)
        except BaseException:
            _done(breaker, admission, start, None)
            raise
        _done(breaker, admission, start, response.status_code)
        return response

    async_send = httpx.AsyncHTTPTransport.handle_async_request

    @functools.wraps(async_send)
    async def handle_async_request(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        breaker = breaker_of(request)
        admission = _admit(breaker, lambda m: Refused(breaker.name, m, request))
        start = perf_counter()
        try:
            response = await async_send(self, request)
        except BaseException:
            _done(breaker, admission, start, None)
            raise
        _done(breaker, admission, start, response.status_code)
        return response

    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]


def _guard_requests(breakers: AutoBreakers) -> None:
    import requests
    from requests.adapters import HTTPAdapter

    class Refused(CallNotPermitted, requests.exceptions.ConnectionError):
        def __init__(self, breaker: str, message: str, request: Any) -> None:
            CallNotPermitted.__init__(self, breaker, message)
            self.request = request
            self.response = None

    original = HTTPAdapter.send

    @functools.wraps(original)
    def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        breaker = breakers.get(_where(url.hostname or "", url.port, url.scheme))
        admission = _admit(breaker, lambda m: Refused(breaker.name, m, request))
        start = perf_counter()
        try:
            response = original(self, request, *args, **kwargs)
        except BaseException:
            _done(breaker, admission, start, None)
            raise
        _done(breaker, admission, start, response.status_code)
        return response

    HTTPAdapter.send = send  # type: ignore[method-assign]
