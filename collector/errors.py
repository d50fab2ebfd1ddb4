"""Ingest errors: each maps to one HTTP status and one gRPC code, in one place.

Raised by decoders and the pipeline; the HTTP and gRPC front ends translate them and
never let any other exception reach a sender as a 500 without logging it.
"""

from __future__ import annotations

import grpc


class IngestError(Exception):
    """A request the collector will not take; `message` says why, for the sender."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    retry_after: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedPayload(IngestError):
    """The body could not be decoded (not protobuf/JSON of the expected message)."""


class ClientGone(IngestError):
    """The connection closed before the whole body arrived (the client left, or the body deadline
    answered 408 and closed it): nobody reads this answer; it is counted as what happened."""

    http_status = 408


class RejectedByStore(IngestError):
    """The store refused these spans as data (it would refuse them again): not retryable."""


class UnsupportedMediaType(IngestError):
    http_status = 415


class PayloadTooLarge(IngestError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthorized(IngestError):
    """The collector wants an ingest token and the request did not carry the right one."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class Overloaded(IngestError):
    """The collector cannot take more right now; the sender should retry later."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retry_after = 1.0


class StoreDown(Overloaded):
    """The store refused the batch; nothing of it was stored, retrying is safe."""
