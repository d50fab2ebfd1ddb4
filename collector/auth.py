"""The optional ingest token: `Authorization: Bearer <token>` on every ingest request.

Compared in constant time; the token itself is never logged or echoed in an answer.
"""

from __future__ import annotations

import hmac

from tracehouse.collector.errors import Unauthorized


def check_bearer(authorization: str | None, token: str | None) -> None:
    """Raise `Unauthorized` unless no token is configured or `authorization` carries it."""
    if not token:
        return
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized("this collector requires an ingest token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Unauthorized("the ingest token is not valid")
