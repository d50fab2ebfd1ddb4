"""One owner per embedded data directory: a second process gets a clear error naming the
directory and the owner, never chDB's `Cannot lock file`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracehouse.storage import StorageError, StoreConfig, StoreLocked, open_store
from tracehouse.storage.lock import DataDirLock

pytestmark = pytest.mark.integration

HOLDER = """
import sys
from tracehouse.storage import StoreConfig, open_store
store = open_store(StoreConfig(dsn="chdb://" + sys.argv[1]))
print("holding", flush=True)
sys.stdin.read()
store.close()
"""


def test_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "store"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreLocked) as caught:
            open_store(StoreConfig(dsn=f"chdb://{data}"))
        message = str(caught.value)
        assert str(data.resolve()) in message
        assert f"pid {holder.pid}" in message
        assert "Cannot lock file" not in message
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0


def test_a_data_dir_that_cannot_be_one_is_told_plainly(tmp_path: Path) -> None:
    # Was a bare "[Errno 17] File exists: …" (a read-only one: "[Errno 30] Read-only file system").
    taken = tmp_path / "a-file"
    taken.write_text("not a directory")
    with pytest.raises(StorageError, match=r"a-file/store cannot be used \(Not a directory\): give --data-dir"):
        DataDirLock(taken / "store")
    with pytest.raises(StorageError, match=r"cannot be used \(it is a file\)"):
        DataDirLock(taken)


def test_a_data_directory_made_here_is_its_owners_alone(tmp_path: Path) -> None:
    # Spans hold SQL, URLs and user ids; the data directory was 0755, its files 0644 (security review).
    lock = DataDirLock(tmp_path / "new" / "store")
    try:
        assert (tmp_path / "new" / "store").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "new" / "store" / "tracehouse.lock").stat().st_mode & 0o777 == 0o600
    finally:
        lock.release()
