"""Store calls from the API: storage failures become `ApiError`s with a clear message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tracehouse.query.errors import BadRequest, Unavailable
from tracehouse.storage import InvalidQuery, StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")


def guarded(call: Callable[[], T]) -> T:
    try:
        return call()
    except InvalidQuery as exc:
        raise BadRequest(f"the store cannot evaluate this query: {exc}") from exc
    except StorageError as exc:
        log.warning("store error: %s", exc)
        raise Unavailable(f"the store cannot answer right now: {exc}") from exc
