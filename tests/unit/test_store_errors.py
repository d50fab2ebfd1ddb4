"""How ClickHouse's errors on insert map to the storage errors the pipeline acts on."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tracehouse.storage import StoreBusy, StoreRejected, StoreUnavailable
from tracehouse.storage.clickhouse import insert_error


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Code: 241. DB::Exception: (total) memory limit exceeded: would use 770.01 MiB", StoreBusy),
        ("Code: 252. DB::Exception: Too many parts (3001)", StoreBusy),
        ("Code: 202. DB::Exception: Too many simultaneous queries", StoreBusy),
        ("Code: 209. DB::Exception: Timeout exceeded while writing to socket", StoreUnavailable),
        ("Code: 27. DB::Exception: Cannot parse input", StoreRejected),
        # The store as it is, not the data: was StoreRejected, so a full disk set every acknowledged
        # batch aside as bad data (or answered 400, which exporters do not retry).
        ("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)", StoreUnavailable),
        ("Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED)", StoreUnavailable),
        ("Code: 60. DB::Exception: Table otel.otel_traces_otlp does not exist. (UNKNOWN_TABLE)", StoreUnavailable),
        ("Code: 164. DB::Exception: Cannot execute query in readonly mode. (READONLY)", StoreUnavailable),
        (
            "Code: 1001. DB::Exception: std::__1::__fs::filesystem::filesystem_error: filesystem error: in "
            'create_directories: No space left on device ["/data/store/tmp_insert"]. (STD_EXCEPTION)',
            StoreUnavailable,
        ),
    ],
)
def test_insert_errors_say_whether_to_retry_now_later_or_never(message: str, kind: type[Exception]) -> None:
    error = insert_error(DatabaseError(message), "insert of 10 spans failed")
    assert type(error) is kind
    assert str(error).startswith("insert of 10 spans failed: Code:")


def test_a_lost_connection_is_unavailable_not_busy() -> None:
    assert type(insert_error(OperationalError("connection refused"), "insert")) is StoreUnavailable


def test_data_refused_is_told_in_one_line_without_the_engines_paths() -> None:
    """The sender is answered with the reason; the temporary file the embedded engine read from
    and the stack trace are the server's business."""
    message = (
        "Code: 444. DB::Exception: Protobuf messages are corrupted (in file/uri /tmp/tmpab12.raw): "
        "While executing ProtobufRowInputFormat. (CANNOT_PARSE_PROTOBUF_SCHEMA)\nStack trace:\n0. DB::Exception"
    )
    error = insert_error(DatabaseError(message), "insert of 2 OTLP spans failed")
    assert type(error) is StoreRejected
    assert str(error) == (
        "insert of 2 OTLP spans failed: Code: 444. DB::Exception: Protobuf messages are corrupted: "
        "While executing ProtobufRowInputFormat. (CANNOT_PARSE_PROTOBUF_SCHEMA)"
    )
