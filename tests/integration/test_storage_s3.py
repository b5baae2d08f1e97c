"""Storage against the real S3 server the suite starts (SeaweedFS on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsovvis import jsonio, storage
from wsovvis.errors import StorageError

pytestmark = pytest.mark.s3


def test_round_trip_listing_and_trees(s3_bucket: str, tmp_path: Path) -> None:
    jsonio.write_json(f"{s3_bucket}/run/a.json", {"x": 1})
    storage.write_bytes(f"{s3_bucket}/run/sub/b.bin", b"\x00" * 10)
    assert jsonio.read_json(f"{s3_bucket}/run/a.json") == {"x": 1}
    assert jsonio.read_json(f"{s3_bucket.replace('s3://', 'minio://')}/run/a.json") == {"x": 1}
    assert storage.listdir(f"{s3_bucket}/run") == (["sub"], ["a.json"])
    assert storage.walk_files(f"{s3_bucket}/run") == ["a.json", "sub/b.bin"]
    local = tmp_path / "local"
    storage.download_tree(f"{s3_bucket}/run", local)
    assert (local / "sub" / "b.bin").read_bytes() == b"\x00" * 10
    written = storage.upload_tree(local, f"{s3_bucket}/copy")
    assert written == [f"{s3_bucket}/copy/a.json", f"{s3_bucket}/copy/sub/b.bin"]
    with storage.local_file(f"{s3_bucket}/copy/a.json") as path:
        assert path.read_text() == (local / "a.json").read_text()
    assert storage.exists(f"{s3_bucket}/copy/a.json")
    storage.delete(f"{s3_bucket}/copy/a.json")
    assert not storage.exists(f"{s3_bucket}/copy/a.json")


def test_missing_objects_and_failed_writes(s3_bucket: str) -> None:
    with pytest.raises(storage.StorageNotFoundError, match="NoSuchKey"):
        storage.read_bytes(f"{s3_bucket}/nope")
    with pytest.raises(RuntimeError), storage.open_atomic(f"{s3_bucket}/partial.json", "w") as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert not storage.exists(f"{s3_bucket}/partial.json")
    assert storage.listdir(s3_bucket) == ([], [])
    with storage.open_atomic(f"{s3_bucket}/whole.json", "w") as handle:
        handle.write("{}")
    assert jsonio.read_json(f"{s3_bucket}/whole.json") == {}


def test_unreachable_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(storage, "RETRY_BASE_DELAY", 0.0)
    with pytest.raises(StorageError, match="cannot reach S3 endpoint 127.0.0.1:9"):
        storage.read_bytes("s3://bucket/key")
