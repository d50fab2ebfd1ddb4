"""API errors: one hierarchy, mapped to status codes by one handler in `app.py`.

Every 4xx body is JSON `{"error": {"status": N, "message": "..."}}` saying what was wrong.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Unavailable(ApiError):
    status = 503
