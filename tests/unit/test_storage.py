"""Storage: URI handling, endpoint settings, local atomic writes, retries of transient errors."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from urllib3.exceptions import ProtocolError

from wsovvis import storage
from wsovvis.errors import InputError, StorageError, UsageError


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
    storage.write_json(tmp_path / "a" / "b.json", {"x": 1})
    storage.write_bytes(str(tmp_path / "a" / "c" / "d.bin"), b"\x00\x01")
    assert storage.read_json(tmp_path / "a" / "b.json") == {"x": 1}
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
        storage.read_json(tmp_path / "bad.json")


def test_a_local_file_read_as_a_buffer_is_mapped_and_fails_as_a_read_does(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_bytes(b'[{"a": 1}]')
    buffer = storage.read_buffer(tmp_path / "r.json")
    assert bytes(buffer) == b'[{"a": 1}]' and not isinstance(buffer, bytes)  # mapped, not copied
    (tmp_path / "empty.json").write_bytes(b"")
    assert storage.read_buffer(tmp_path / "empty.json") == b""
    with pytest.raises(InputError, match="empty.json: not valid JSON"):
        storage.read_json(tmp_path / "empty.json")
    with pytest.raises(storage.StorageNotFoundError, match="does not exist"):
        storage.read_buffer(tmp_path / "missing.json")
    with pytest.raises(IsADirectoryError):
        storage.read_buffer(tmp_path)


def test_json_parses_to_the_values_the_standard_library_gives(tmp_path: Path) -> None:
    # The fast parser must not change a score's last bit, an integer's size or which duplicate key wins.
    text = (
        '{"f": [0.1, 2.2250738585072011e-308, 4.9406564584124654e-324, 1.7976931348623157e308, -0.0, 1E5,'
        ' 0.30000000000000004, 123456789.123456789123456789e-5], "i": [0, -0, 123456789012345678901234567890],'
        ' "s": ["a\\u0000b", "\\ud83d\\ude00", "\\u00e9"], "dup": 1, "dup": 2, "n": [true, false, null]}'
    )
    (tmp_path / "v.json").write_text(text)
    parsed = storage.read_json(tmp_path / "v.json", finite=True)
    assert repr(parsed) == repr(json.loads(text))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": NaN}', "holds a number that is not finite"),
        (b'{"a": -1e999}', "holds a number that is not finite"),
        (b'{"a": 1,}', "not valid JSON"),
        (b'{"a": "\xff"}', "not valid JSON"),
    ],
)
def test_json_that_is_not_finite_or_not_json_is_an_input_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "bad.json").write_bytes(content)
    with pytest.raises(InputError, match=f"bad.json: {message}"):
        storage.read_json(tmp_path / "bad.json", finite=True)


def test_json_the_standard_library_accepts_still_parses(tmp_path: Path) -> None:
    # What the fast parser refuses goes to the standard library's: a byte order mark, a lone surrogate, NaN
    # where finiteness is not asked for.
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    (tmp_path / "lone.json").write_text('["\\udc80"]')
    (tmp_path / "nan.json").write_text('{"a": NaN}')
    assert storage.read_json(tmp_path / "bom.json") == {"a": 1}
    assert storage.read_json(tmp_path / "lone.json") == ["\udc80"]
    assert storage.read_json(tmp_path / "nan.json")["a"] != storage.read_json(tmp_path / "nan.json")["a"]


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
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ProtocolError("connection reset")
        return "ok"

    assert storage.with_retries(flaky, "read s3://b/k") == "ok"
    assert len(attempts) == 3

    def broken() -> None:
        raise ProtocolError("connection refused")

    with pytest.raises(StorageError, match="read s3://b/k: cannot reach S3 endpoint"):
        storage.with_retries(broken, "read s3://b/k", attempts=2)

    def not_transient() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        storage.with_retries(not_transient, "x")


def _random_json_value(rng: random.Random, depth: int = 0) -> object:
    draw = rng.random()
    if depth > 3 or draw < 0.5:
        text = "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0, 0x10FFFF)])) for _ in range(4))
        scalars = [rng.random() * 10 ** rng.randint(-320, 308), -0.0, 1e-7, rng.randint(-(2**70), 2**70)]
        return rng.choice([*scalars, True, None, text])
    if draw < 0.75:
        return [_random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        str(_random_json_value(rng, 4)): _random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))
    }


@pytest.mark.parametrize("indent", [2, None])
def test_json_is_written_as_the_standard_library_writes_it(tmp_path: Path, indent: int | None) -> None:
    # Indented text comes from the C encoder's compact text laid out again; the bytes are json.dumps's.
    rng = random.Random(7)
    for _ in range(500):
        value = _random_json_value(rng)
        assert storage.dumps_json(value, indent=indent) == json.dumps(value, indent=indent).encode()
    special = {"loss": [float("nan"), float("inf")], "k": {1: "é"}}
    assert storage.dumps_json(special, indent=indent) == json.dumps(special, indent=indent).encode()
    storage.write_json(tmp_path / "m.json", special, indent=indent)
    assert (tmp_path / "m.json").read_bytes() == json.dumps(special, indent=indent).encode() + b"\n"
