"""mask-gen over a shard: resume after SIGKILL, reruns that change nothing, empty and failing videos, S3."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wsovvis import jsonio, masks, shards, storage
from wsovvis.cli import main
from wsovvis.maskgen import MaskGenConfig, ShardFailedError, mask_gen
from wsovvis.maskgen.motion import MotionBackend
from wsovvis.synth import make_dataset

ROOT = Path(__file__).resolve().parents[2]


def _files(root: Path, *, skip_reports: bool = True) -> dict[str, bytes]:
    """Every visible file below ``root`` (no '.'-prefixed temporaries), by relative path."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (
            path.is_file()
            and not path.name.startswith(".")
            and not (skip_reports and rel.startswith("_reports/"))
        ):
            found[rel] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("synth"), num_videos=10, seed=3, min_frames=14, max_frames=20)


@pytest.fixture(scope="module")
def manifest(dataset, tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("plan") / "manifest.json")
    shards.plan_shards(dataset.frames_root, 1, uri)
    return uri


@pytest.fixture(scope="module")
def reference(dataset, manifest, tmp_path_factory) -> Path:
    """An uninterrupted in-process run of the shard."""
    out = tmp_path_factory.mktemp("reference")
    mask_gen(MaskGenConfig(manifest, 0, dataset.frames_root, str(out)), MotionBackend())
    return out


def _mask_gen_command(manifest: str, frames_root: str, out_root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "wsovvis",
        "mask-gen",
        "--manifest",
        manifest,
        "--shard",
        "0",
        "--frames_root",
        frames_root,
        "--out_root",
        str(out_root),
        "--backend",
        "motion",
    ]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_killed_shard_resumes_to_exactly_the_uninterrupted_output(
    dataset, manifest, reference, tmp_path
) -> None:
    out = tmp_path / "masks"
    command = _mask_gen_command(manifest, dataset.frames_root, out)
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list((out / "_done").glob("[!.]*.json")):  # a finished marker, not one being written
        assert process.poll() is None, f"mask-gen ended before it could be killed: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no video finished within 60 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    videos = [v.video_id for v in dataset.videos]
    killed_with = _files(out)
    done_before = {rel for rel in killed_with if rel.startswith("_done/")}
    assert 0 < len(done_before) < len(videos), "the kill must land mid-shard for this test to mean anything"
    for rel, data in killed_with.items():  # whatever is visible after the kill is whole
        if rel.endswith(".tar"):
            assert data == (reference / rel).read_bytes()

    undone = next(v for v in videos if f"_done/{v}.json" not in done_before)
    (out / f".{undone}.tar.k1ll3d.tmp").write_bytes(b"half a tar")  # as a kill during the write leaves it
    (out / ".other-shards-video.tar.inflight.tmp").write_bytes(b"another pod is writing this")

    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    leftovers = sorted(p.relative_to(out).as_posix() for p in out.rglob(".*"))
    assert leftovers == [".other-shards-video.tar.inflight.tmp"]  # ours cleared, another shard's left alone
    assert f"{len(done_before)} done earlier" in rerun.stderr
    resumed = _files(out)
    assert resumed == _files(reference)
    assert sorted(rel for rel in resumed if rel.endswith(".tar")) == sorted(f"{v}.tar" for v in videos)
    assert sorted(masks.list_mask_videos(str(out))) == sorted(videos)
    report = json.loads((out / "_reports" / "shard-0.json").read_text())
    assert sorted(report["done"] + report["empty"]) == sorted(videos)
    assert len(report["resumed"]) == len(done_before)


def test_rerun_of_a_finished_shard_changes_nothing(dataset, manifest, reference, tmp_path) -> None:
    out = tmp_path / "masks"
    shutil.copytree(reference, out)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    code = main(_mask_gen_command(manifest, dataset.frames_root, out)[3:])
    assert code == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == before


def test_empty_and_failing_videos(dataset, tmp_path, caplog) -> None:
    frames = tmp_path / "frames"
    moving = dataset.videos[0]
    shutil.copytree(Path(dataset.frames_root) / moving.video_id, frames / moving.video_id)
    still = Path(dataset.frames_root) / moving.video_id / moving.frame_names[0]
    for name in moving.frame_names:
        (frames / "still").mkdir(exist_ok=True)
        shutil.copy(still, frames / "still" / name)
    shutil.copytree(frames / moving.video_id, frames / "broken")
    (frames / "broken" / moving.frame_names[3]).write_bytes(b"\xff\xd8 not really a jpeg")
    manifest = str(tmp_path / "manifest.json")
    shards.plan_shards(str(frames), 1, manifest)
    out = tmp_path / "masks"

    caplog.set_level(logging.WARNING)
    report = mask_gen(MaskGenConfig(manifest, 0, str(frames), str(out), max_errors=0.5), MotionBackend())
    assert report.ids("done") == [moving.video_id]
    assert report.ids("empty") == ["still"]
    (failed,) = report.failed
    assert failed.video_id == "broken" and moving.frame_names[3] in failed.reason
    assert sum("video broken failed" in r.getMessage() for r in caplog.records) == 2  # tried twice

    empty = masks.read_video_masks("still", str(out / "still.tar"))
    assert empty.pngs == {} and empty.sidecar == {"video_id": "still", "num_instances": 0, "scores": {}}
    assert json.loads((out / "_done" / "still.json").read_text())["status"] == "empty"
    assert not (out / "broken.tar").exists() and not (out / "_done" / "broken.json").exists()
    written = json.loads((out / "_reports" / "shard-0.json").read_text())
    assert written["failed"] == [{"video_id": "broken", "reason": failed.reason}]
    assert written["counts"] == {"done": 1, "empty": 1, "failed": 1}

    with pytest.raises(ShardFailedError, match=r"1 of 3 videos failed"):
        mask_gen(MaskGenConfig(manifest, 0, str(frames), str(out), max_errors=0.05), MotionBackend())
    code = main(_mask_gen_command(manifest, str(frames), out)[3:] + ["--max-errors", "0.05"])
    assert code != 0
    assert "max_errors" in caplog.records[-1].getMessage()

    shutil.copy(frames / moving.video_id / moving.frame_names[3], frames / "broken" / moving.frame_names[3])
    report = mask_gen(MaskGenConfig(manifest, 0, str(frames), str(out), max_errors=0.0), MotionBackend())
    assert report.failed == [] and [o.video_id for o in report.outcomes if not o.earlier_run] == ["broken"]
    repaired = masks.read_video_masks("broken", str(out / "broken.tar"))
    assert repaired.pngs == masks.read_video_masks(moving.video_id, str(out / f"{moving.video_id}.tar")).pngs


@pytest.mark.s3
def test_frames_manifest_and_masks_on_s3(dataset, reference, s3_bucket, monkeypatch) -> None:
    frames_root = f"{s3_bucket}/frames"
    shard_videos = [v.video_id for v in dataset.videos[:3]]
    for video in dataset.videos[:3]:
        for name in video.frame_names:
            storage.upload(
                Path(dataset.frames_root) / video.video_id / name, f"{frames_root}/{video.video_id}/{name}"
            )
    manifest = f"{s3_bucket}/plan/manifest.json"
    plan = shards.plan_shards(frames_root, 1, manifest, out_indices=f"{s3_bucket}/plan/indices.json")
    assert sorted(plan.shards[0].videos) == sorted(shard_videos)
    assert jsonio.read_json(f"{s3_bucket}/plan/indices.json") == [0]

    out_root = f"{s3_bucket}/masks"
    report = mask_gen(MaskGenConfig(manifest, 0, frames_root, out_root), MotionBackend())
    assert sorted(report.ids("done") + report.ids("empty")) == sorted(shard_videos)
    assert sorted(masks.list_mask_videos(out_root)) == sorted(shard_videos)
    for video_id in shard_videos:
        assert (
            storage.read_bytes(f"{out_root}/{video_id}.tar") == (reference / f"{video_id}.tar").read_bytes()
        )
        assert storage.exists(f"{out_root}/_done/{video_id}.json")
    assert jsonio.read_json(f"{out_root}/_reports/shard-0.json")["counts"]["failed"] == 0

    # A resume trusts a tar whose ETag is still the one its marker recorded, without downloading it...
    def no_download(uri):
        raise AssertionError(f"{uri} was read back to check it")

    with monkeypatch.context() as patched:
        patched.setattr(storage, "sha256", no_download)
        rerun = mask_gen(MaskGenConfig(manifest, 0, frames_root, out_root), MotionBackend())
    assert all(o.earlier_run for o in rerun.outcomes)

    # ...and a tar rewritten with other bytes of the same size (a new ETag) is checked and made again.
    damaged = shard_videos[0]
    tar = bytearray(storage.read_bytes(f"{out_root}/{damaged}.tar"))
    tar[-1] ^= 0xFF
    storage.write_bytes(f"{out_root}/{damaged}.tar", bytes(tar))
    rerun = mask_gen(MaskGenConfig(manifest, 0, frames_root, out_root), MotionBackend())
    assert sorted(o.video_id for o in rerun.outcomes if not o.earlier_run) == [damaged]
    assert storage.read_bytes(f"{out_root}/{damaged}.tar") == (reference / f"{damaged}.tar").read_bytes()


def test_pipelined_and_serial_loops_write_the_same_output(dataset, manifest, reference, tmp_path) -> None:
    for prefetch in (0, 1, 3):
        out = tmp_path / f"prefetch-{prefetch}"
        report = mask_gen(
            MaskGenConfig(manifest, 0, dataset.frames_root, str(out), prefetch=prefetch), MotionBackend()
        )
        assert _files(out) == _files(reference), f"prefetch {prefetch}"
        assert [o.video_id for o in report.outcomes] == shards.load_shard(manifest, 0)


def test_a_background_write_failure_is_the_right_videos_and_is_retried(
    dataset, manifest, reference, tmp_path, monkeypatch, caplog
) -> None:
    videos = shards.load_shard(manifest, 0)
    flaky, broken = videos[1], videos[4]
    real_write = storage.write_bytes
    failures = {flaky: 1, broken: 99}

    def write_bytes(uri: str, data: bytes) -> None:
        video_id = Path(uri).name[: -len(".tar")]
        if uri.endswith(".tar") and failures.get(video_id, 0) > 0:
            failures[video_id] -= 1
            raise ConnectionError(f"injected: the store dropped the upload of {video_id}")
        real_write(uri, data)

    monkeypatch.setattr(storage, "write_bytes", write_bytes)
    caplog.set_level(logging.WARNING)
    out = tmp_path / "masks"
    report = mask_gen(
        MaskGenConfig(manifest, 0, dataset.frames_root, str(out), max_errors=0.5), MotionBackend()
    )

    warnings = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert warnings == [
        f"video {flaky} failed (attempt 1/2): ConnectionError: injected: the store dropped the upload of {flaky}",
        f"video {broken} failed (attempt 1/2): ConnectionError: injected: the store dropped the upload of {broken}",
        f"video {broken} failed (attempt 2/2): ConnectionError: injected: the store dropped the upload of {broken}",
    ]
    assert [o.video_id for o in report.outcomes] == videos
    assert [o.video_id for o in report.failed] == [broken] and broken in report.failed[0].reason
    expected = {rel: data for rel, data in _files(reference).items() if broken not in rel}
    assert _files(out) == expected  # the flaky video retried to the same bytes; no marker without its tar


SIGTERM_RUNNER = """
import sys, time
from pathlib import Path
from wsovvis import storage
from wsovvis.cli import main

flag = Path(sys.argv[1])
real_write = storage.write_bytes

def slow_write(uri, data):
    # A slow upload, so that SIGTERM lands while a tar is in flight in the background.
    if uri.endswith(".tar"):
        flag.write_text(uri)
        time.sleep(1.0)
    real_write(uri, data)

storage.write_bytes = slow_write
sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_lets_the_write_in_flight_finish_and_leaves_no_marker_without_its_tar(
    dataset, manifest, reference, tmp_path
) -> None:
    out = tmp_path / "masks"
    flag = tmp_path / "writing"
    command = [sys.executable, "-c", SIGTERM_RUNNER, str(flag)] + _mask_gen_command(
        manifest, dataset.frames_root, out
    )[3:]
    process = subprocess.Popen(
        command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert process.poll() is None, f"mask-gen ended before any write: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no tar write started within 60 s"
        time.sleep(0.01)
    in_flight = Path(flag.read_text()).name
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr

    stopped_with = _files(out)
    assert sorted(p.name for p in out.rglob(".*")) == []  # no temporary, no partial object
    assert in_flight in stopped_with, "the write in flight when SIGTERM came was finished"
    markers = {rel[len("_done/") : -len(".json")] for rel in stopped_with if rel.startswith("_done/")}
    tars = {rel[: -len(".tar")] for rel in stopped_with if rel.endswith(".tar")}
    assert markers == tars and 0 < len(markers) < len(dataset.videos)
    for rel, data in stopped_with.items():
        assert data == (reference / rel).read_bytes()

    assert main(_mask_gen_command(manifest, dataset.frames_root, out)[3:]) == 0
    assert _files(out) == _files(reference)
