"""The on-disk spool: order, persistence across restarts, the byte bound, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.spans import full_batch
from tracehouse.collector import Spool, SpoolFull
from tracehouse.collector.spool import encode
from tracehouse.storage import OtlpPayload


def test_batches_come_back_in_order_with_their_tokens(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000)
    first, second = full_batch(spans=2), full_batch(spans=3)
    spool.append(first)
    spool.append(second)
    assert len(spool) == 2
    oldest = spool.oldest()
    assert oldest is not None
    assert oldest.batch == first  # every column and the token
    spool.remove(oldest)
    following = spool.oldest()
    assert following is not None
    assert following.batch == second
    spool.remove(following)
    assert spool.oldest() is None
    assert spool.bytes == 0


def test_spooled_batches_survive_a_restart(tmp_path: Path) -> None:
    batch = full_batch()
    Spool(tmp_path, max_bytes=10_000_000).append(batch)
    (tmp_path / "000000000099.tmp").write_bytes(b"half written")  # a crash mid-append
    reopened = Spool(tmp_path, max_bytes=10_000_000)
    assert len(reopened) == 1
    assert reopened.bytes == len(encode(batch))
    assert not list(tmp_path.glob("*.tmp"))
    oldest = reopened.oldest()
    assert oldest is not None
    assert oldest.batch == batch
    reopened.append(full_batch())
    assert [p.name for p in sorted(tmp_path.glob("*.batch"))] == ["000000000001.batch", "000000000002.batch"]


def test_the_bound_is_respected(tmp_path: Path) -> None:
    batch = full_batch()
    size = len(encode(batch))
    spool = Spool(tmp_path, max_bytes=size * 2 + 10)
    spool.append(batch)
    spool.append(batch)
    with pytest.raises(SpoolFull, match="would pass"):
        spool.append(batch)
    assert len(spool) == 2


def test_an_unreadable_file_is_moved_aside_not_lost(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000)
    spool.append(full_batch())
    good = full_batch()
    spool.append(good)
    (tmp_path / "000000000001.batch").write_bytes(b"{not json")
    oldest = spool.oldest()
    assert oldest is not None
    assert oldest.batch == good
    assert (tmp_path / "000000000001.corrupt").exists()


def test_hostile_strings_round_trip(tmp_path: Path) -> None:
    batch = full_batch()
    batch.span_name[0] = "nul\x00 and \udcff lone surrogate"
    spool = Spool(tmp_path, max_bytes=10_000_000)
    spool.append(batch)
    oldest = spool.oldest()
    assert oldest is not None
    assert oldest.batch.span_name[0] == batch.span_name[0]


def test_otlp_payloads_are_spooled_as_raw_bytes(tmp_path: Path) -> None:
    payload = OtlpPayload.frame(b"\x0a\x00 raw request bytes \xff", 7)
    spool = Spool(tmp_path, max_bytes=10_000_000)
    spool.append(payload)
    spool.append(full_batch())
    reopened = Spool(tmp_path, max_bytes=10_000_000)
    oldest = reopened.oldest()
    assert oldest is not None
    assert oldest.batch == payload  # data, span count and token
    assert oldest.path.suffix == ".otlp"


def test_a_logged_batch_is_forgotten_once_stored(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000)
    logged = spool.log(full_batch())
    assert spool.logged == 1
    assert logged.parent == tmp_path / "ahead"
    assert logged.exists()
    assert len(spool) == 0  # logged is not spooled: the replay does not take it
    spool.forget(logged)
    assert spool.logged == 0
    assert not logged.exists()
    assert spool.oldest() is None


def test_a_logged_batch_the_store_refused_is_adopted_after_the_spooled_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000)
    spooled, logged_batch = full_batch(), full_batch()
    logged = spool.log(logged_batch)
    spool.append(spooled)
    spool.adopt(logged)
    assert not logged.exists()
    assert spool.bytes == len(encode(spooled)) + len(encode(logged_batch))
    first = spool.oldest()
    assert first is not None
    assert first.batch == spooled
    spool.remove(first)
    second = spool.oldest()
    assert second is not None
    assert second.batch == logged_batch


def test_a_batch_still_logged_at_start_is_spooled(tmp_path: Path) -> None:
    """The process died between answering the senders and the insert's end: the next start
    spools the batch (its token makes the replay a no-op if the insert had completed)."""
    batch = full_batch()
    Spool(tmp_path, max_bytes=10_000_000).log(batch)
    (tmp_path / "ahead" / "000000000009.tmp").write_bytes(b"half written")  # never answered
    reopened = Spool(tmp_path, max_bytes=10_000_000)
    assert len(reopened) == 1
    assert list((tmp_path / "ahead").iterdir()) == []
    oldest = reopened.oldest()
    assert oldest is not None
    assert oldest.batch == batch


def test_logged_batches_count_against_the_bound(tmp_path: Path) -> None:
    batch = full_batch()
    spool = Spool(tmp_path, max_bytes=len(encode(batch)) * 2 + 10)
    logged = spool.log(batch)
    spool.append(batch)
    with pytest.raises(SpoolFull, match="would pass"):
        spool.log(batch)
    spool.forget(logged)
    spool.log(batch)


def test_a_batch_set_aside_is_kept_but_never_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000)
    payload = OtlpPayload.frame(b"\x0a\x00 refused", 1)
    spool.set_aside(payload)
    assert spool.oldest() is None
    assert spool.bytes == 0
    [kept] = tmp_path.glob("*.rejected")
    assert kept.read_bytes().endswith(payload.data)


def test_what_was_set_aside_survives_the_next_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The next run numbered its files from the last *spooled* batch, and its .rejected and .corrupt
    # files replaced the earlier ones of the same numbers: the only copy of those spans.
    first = OtlpPayload.frame(b"\x0a\x00 first run", 1)
    spool = Spool(tmp_path, max_bytes=10_000_000)
    spool.set_aside(first)
    spool.append(full_batch())
    (tmp_path / "000000000002.batch").write_bytes(b"{not json")
    assert spool.oldest() is None  # moved aside as .corrupt
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert sorted(kept) == ["000000000001.rejected", "000000000002.corrupt"]

    with caplog.at_level("WARNING"):
        again = Spool(tmp_path, max_bytes=10_000_000)
    again.set_aside(OtlpPayload.frame(b"\x0a\x00 second run", 2))
    again.append(full_batch())
    for name, data in kept.items():
        assert (tmp_path / name).read_bytes() == data
    assert len(list(tmp_path.glob("*.rejected"))) == 2
    told = [r.getMessage() for r in caplog.records]
    assert any("holds 1 .rejected files" in m and "never replayed" in m for m in told), told
    assert any("holds 1 .corrupt files" in m for m in told), told


def test_spooled_spans_are_the_owners_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10_000_000)
    spool.append(full_batch())
    spool.set_aside(OtlpPayload.frame(b"\x0a\x00", 1))
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "spool").iterdir() if p.is_file()} == {0o600}
