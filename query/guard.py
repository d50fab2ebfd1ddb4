"""Store calls from the API: storage failures become `ApiError`s with a clear message.

What the store said goes to the server log, once; the caller is told what failed, never the
engine's text (its SQL, paths, settings)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tracehouse.query.errors import BadRequest, Unavailable
from tracehouse.storage import InvalidQuery, StorageError, StoreBusy

log = logging.getLogger(__name__)
T = TypeVar("T")


def guarded(call: Callable[[], T]) -> T:
    try:
        return call()
    except InvalidQuery as exc:  # the store's first line about the caller's own input (a regex)
        raise BadRequest(f"the store cannot evaluate this query: {exc}") from exc
    except StoreBusy as exc:
        log.warning("store busy: %s", exc)
        raise Unavailable(
            "the store ran out of time or memory for this query (it may be busy): try again, or narrow the "
            "search (a shorter time range, a service); the server log has the detail"
        ) from exc
    except StorageError as exc:
        log.warning("store error: %s", exc)
        raise Unavailable("the store could not answer this query; the server log has the detail") from exc
