"""Storage: URI handling, endpoint settings, local atomic writes, retries of transient errors and the endpoint
they name."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from urllib3.exceptions import ProtocolError

from wsovvis import jsonio, storage
from wsovvis.errors import InputError, StorageError, UsageError
from wsovvis.storage_s3 import S3Store


def test_uri_forms() -> None:
    assert storage.is_remote("s3://b/k") and storage.is_remote("minio://b/k")
    assert not storage.is_remote("/tmp/x") and not storage.is_remote("relative/s3:/x")
    assert storage.parse_s3("minio://bucket/a/b/") == storage.S3Location("bucket", "a/b")
    assert storage.join("s3://b/root/", "v1", "x.tar") == "s3://b/root/v1/x.tar"
    assert storage.join("/data", "v1") == "/data/v1"
    assert storage.local_path("file:///tmp/a") == Path("/tmp/a")
    with pytest.raises(UsageError, match="unknown URI scheme"):
        storage.local_path("gs://bucket/key")
    with pytest.raises(UsageError, match="no bucket"):
        storage.parse_s3("s3:///key")


def test_endpoint_settings_from_the_environment() -> None:
    plain = storage.S3Settings.from_env({"S3_ENDPOINT": "seaweedfs.kubeflow:9000", "AWS_ACCESS_KEY_ID": "k"})
    assert (plain.host, plain.secure, plain.access_key, plain.secret_key) == (
        "seaweedfs.kubeflow:9000",
        False,
        "k",
        None,
    )
    tls = storage.S3Settings.from_env(
        {"AWS_ENDPOINT_URL": "https://s3.example.org", "S3_ENDPOINT": "ignored:1"}
    )
    assert (tls.host, tls.secure) == ("s3.example.org", True)
    assert storage.S3Settings.from_env({"AWS_REGION": "eu-west-1"}).region == "eu-west-1"
    with pytest.raises(UsageError, match="AWS_ENDPOINT_URL"):
        storage.S3Settings.from_env({"AWS_ENDPOINT_URL": "ftp://host"})


def test_local_write_read_list_walk_and_delete(tmp_path: Path) -> None:
    jsonio.write_json(tmp_path / "a" / "b.json", {"x": 1})
    storage.write_bytes(str(tmp_path / "a" / "c" / "d.bin"), b"\x00\x01")
    assert jsonio.read_json(tmp_path / "a" / "b.json") == {"x": 1}
    assert storage.listdir(str(tmp_path / "a")) == (["c"], ["b.json"])
    assert storage.walk_files(str(tmp_path / "a")) == ["b.json", "c/d.bin"]
    copied = storage.download_tree(str(tmp_path / "a"), tmp_path / "copy")
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in copied) == ["b.json", "c/d.bin"]
    storage.delete(str(tmp_path / "a" / "b.json"))
    storage.delete(str(tmp_path / "a" / "b.json"))
    assert not storage.exists(str(tmp_path / "a" / "b.json"))
    with pytest.raises(storage.StorageNotFoundError, match="does not exist"):
        storage.read_bytes(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="not valid JSON"):
        storage.write_text(tmp_path / "bad.json", "{")
        jsonio.read_json(tmp_path / "bad.json")


def test_a_local_file_read_as_a_buffer_is_mapped_and_fails_as_a_read_does(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_bytes(b'[{"a": 1}]')
    buffer = storage.read_buffer(tmp_path / "r.json")
    assert bytes(buffer) == b'[{"a": 1}]' and not isinstance(buffer, bytes)  # mapped, not copied
    (tmp_path / "empty.json").write_bytes(b"")
    assert storage.read_buffer(tmp_path / "empty.json") == b""
    with pytest.raises(InputError, match="empty.json: not valid JSON"):
        jsonio.read_json(tmp_path / "empty.json")
    with pytest.raises(storage.StorageNotFoundError, match="does not exist"):
        storage.read_buffer(tmp_path / "missing.json")
    with pytest.raises(IsADirectoryError):
        storage.read_buffer(tmp_path)


def test_open_atomic_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), storage.open_atomic(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_transient_errors_are_retried_with_backoff_then_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "RETRY_BASE_DELAY", 0.0)
    store = S3Store(storage.S3Settings(endpoint="127.0.0.1:9"))
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ProtocolError("connection reset")
        return "ok"

    assert store.retry(flaky, "read s3://b/k") == "ok"
    assert len(attempts) == 3

    def broken() -> None:
        attempts.append(1)
        raise ProtocolError("connection refused")

    attempts.clear()
    monkeypatch.setattr(storage, "RETRY_ATTEMPTS", 2)
    with pytest.raises(StorageError, match="read s3://b/k: cannot reach S3 endpoint"):
        store.retry(broken, "read s3://b/k")
    assert len(attempts) == 2

    def not_transient() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        store.retry(not_transient, "x")


def test_errors_name_the_endpoint_of_the_client_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # A store made with explicit settings reports its own endpoint, not the one the environment names. Two bound
    # sockets that do not listen: two distinct ports that refuse connections.
    with socket.socket() as one, socket.socket() as other:
        one.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        explicit, from_env = (f"127.0.0.1:{sock.getsockname()[1]}" for sock in (one, other))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{from_env}")
        monkeypatch.setattr(storage, "RETRY_BASE_DELAY", 0.0)
        store = S3Store(storage.S3Settings(endpoint=explicit))
        with pytest.raises(
            StorageError, match=f"read s3://bucket/key: cannot reach S3 endpoint {explicit} "
        ) as info:
            store.read_bytes("s3://bucket/key")
        assert f"{from_env} " not in str(info.value)
        with pytest.raises(StorageError, match=f"cannot reach S3 endpoint {from_env} "):
            storage.read_bytes("s3://bucket/key")  # the module's functions use the environment's
