"""Faults of the places a stage reads and writes: each ends with one line naming the location and the cause, a
documented exit code (docs/dev/robustness.md), earlier outputs intact, and a rerun that resumes."""

from __future__ import annotations

import http.server
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from wsovvis import jsonio, shards, storage
from wsovvis.cli import main
from wsovvis.synth import make_dataset

ROOT = Path(__file__).resolve().parents[2]
STORAGE_FAULT = 5


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("synth"), num_videos=3, seed=11, min_frames=5, max_frames=5)


@pytest.fixture(scope="module")
def manifest(synth, tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("plan") / "manifest.json")
    shards.plan_shards(synth.frames_root, 1, uri)
    return uri


def _mask_gen_args(manifest: str, frames_root: str, out_root: str, *extra: str) -> list[str]:
    return [
        "mask-gen",
        "--manifest",
        manifest,
        "--shard",
        "0",
        "--frames_root",
        frames_root,
        "--out_root",
        out_root,
        "--backend",
        "motion",
        *extra,
    ]


def _cli(args: list[str], *, cwd: Path | None = None, preexec=None, wrap: list[str] | None = None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [*(wrap or []), sys.executable, "-m", "wsovvis", *args]
    return subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=preexec,
        timeout=120,
    )


def _one_line(stderr: str) -> str:
    """The error line of a failed command; it must be the only ERROR line and no traceback may be printed."""
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith("_reports/")
    }


def test_a_missing_scratch_folder_is_one_line_before_any_work(synth, manifest, tmp_path) -> None:
    out = tmp_path / "out"
    run = _cli(_mask_gen_args(manifest, synth.frames_root, str(out), "--scratch", str(tmp_path / "nope")))
    assert run.returncode == 2
    assert f"--scratch {tmp_path / 'nope'}: no such folder" in _one_line(run.stderr)
    assert not out.exists()


def _done_then_one_tar_lost(synth, manifest, tmp_path) -> tuple[Path, dict[str, bytes], str]:
    out = tmp_path / "out"
    assert main(_mask_gen_args(manifest, synth.frames_root, str(out))) == 0
    complete = _files(out)
    lost = f"{synth.videos[1].video_id}.tar"
    (out / lost).unlink()
    return out, complete, lost


def _resumes(synth, manifest, out: Path, complete: dict[str, bytes]) -> None:
    rerun = _cli(_mask_gen_args(manifest, synth.frames_root, str(out)))
    assert rerun.returncode == 0, rerun.stderr
    assert "2 done earlier, 1 to do" in rerun.stderr
    assert _files(out) == complete


def test_a_full_disk_stops_the_stage_with_one_line_and_a_rerun_resumes(synth, manifest, tmp_path) -> None:
    out, complete, lost = _done_then_one_tar_lost(synth, manifest, tmp_path)
    tar_size = len(complete[lost])

    def small_files() -> (
        None
    ):  # the file-size limit fails a write as a full disk does (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (tar_size // 2, tar_size // 2))

    run = _cli(_mask_gen_args(manifest, synth.frames_root, str(out)), preexec=small_files)
    assert run.returncode == STORAGE_FAULT
    assert f"{out / lost}: cannot write (File too large)" in _one_line(run.stderr)
    assert _files(out) == {k: v for k, v in complete.items() if k != lost}
    _resumes(synth, manifest, out, complete)


def test_a_full_disk_in_convert_is_one_line_and_leaves_the_earlier_output(synth, manifest, tmp_path) -> None:
    out = tmp_path / "out"
    assert main(_mask_gen_args(manifest, synth.frames_root, str(out))) == 0
    tubes = tmp_path / "tubes.json"
    tubes.write_text("earlier output\n")
    convert = ["convert", "--mask_root", str(out), "--img_root", synth.frames_root, "--out_json", str(tubes)]
    convert += ["--min_masks", "1", "--workers", "1"]
    run = _cli(convert, preexec=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200)))
    assert run.returncode == STORAGE_FAULT
    assert f"{tubes}: cannot write (File too large)" in _one_line(run.stderr)
    assert tubes.read_text() == "earlier output\n"
    assert _cli(convert).returncode == 0 and json.loads(tubes.read_text())["videos"]


def test_a_read_only_output_location_is_one_line_and_a_rerun_resumes(synth, manifest, tmp_path) -> None:
    out, complete, lost = _done_then_one_tar_lost(synth, manifest, tmp_path)
    if (
        os.geteuid() == 0
    ):  # root writes through permissions: mount the output read-only in a private namespace
        if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], check=False).returncode:
            pytest.skip("running as root without `unshare -m`: cannot make a read-only location here")
        script = f'mount --bind "{out}" "{out}" && mount -o remount,bind,ro "{out}" && exec "$@"'
        wrap = ["unshare", "-m", "sh", "-c", script, "sh"]
        run = _cli(_mask_gen_args(manifest, synth.frames_root, str(out)), wrap=wrap)
    else:
        out.chmod(0o555)
        try:
            run = _cli(_mask_gen_args(manifest, synth.frames_root, str(out)))
        finally:
            out.chmod(0o755)
    assert run.returncode == STORAGE_FAULT
    line = _one_line(run.stderr)
    assert f"{out / lost}: cannot write (" in line and (
        "Read-only file system" in line or "Permission denied" in line
    )
    assert _files(out) == {k: v for k, v in complete.items() if k != lost}
    _resumes(synth, manifest, out, complete)


class _NotS3(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        body = b"<html><body>a web server, not S3</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_PUT = do_GET

    def log_message(self, *args) -> None:
        pass


def test_an_endpoint_that_is_not_s3_is_one_line(tmp_path, monkeypatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{endpoint}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        args = ["plan-shards", "--frames_root", "s3://frames/train", "--num_shards", "1"]
        run = _cli([*args, "--out_manifest", str(tmp_path / "m.json")])
    finally:
        server.shutdown()
    assert run.returncode == STORAGE_FAULT
    line = _one_line(run.stderr)
    assert f"list s3://frames/train: endpoint {endpoint} did not answer as an S3 server" in line
    assert not (tmp_path / "m.json").exists()


@pytest.mark.s3
def test_wrong_credentials_on_the_real_server_are_one_line(s3_bucket, tmp_path, monkeypatch) -> None:
    storage.write_text(f"{s3_bucket}/list.txt", "v1\n")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    run = _cli(["make-agnostic", "--in_json", f"{s3_bucket}/gt.json", "--out_json", str(tmp_path / "o.json")])
    assert run.returncode == STORAGE_FAULT
    line = _one_line(run.stderr)
    assert f"read {s3_bucket}/gt.json: S3 endpoint" in line and "refused the credentials" in line
    assert "AWS_SECRET_ACCESS_KEY" in line


@pytest.mark.s3
@pytest.mark.parametrize(
    "prefetch", ["0", "2"]
)  # the serial loop, and the pipelined one (writes in a thread)
def test_the_s3_server_killed_mid_shard_and_restarted(
    synth, manifest, s3_server, monkeypatch, caplog, prefetch
) -> None:
    out_root = "s3://masks/run"
    storage.ensure_bucket(out_root)
    monkeypatch.setattr(storage, "RETRY_BASE_DELAY", 0.01)
    second = synth.videos[1].video_id
    write_bytes = storage.write_bytes

    def kill_then_write(uri, data):
        if uri.endswith(f"/{second}.tar"):
            s3_server.kill()  # the server dies as the shard's second video is uploaded
        return write_bytes(uri, data)

    monkeypatch.setattr(storage, "write_bytes", kill_then_write)
    caplog.set_level(logging.INFO)
    assert (
        main(_mask_gen_args(manifest, synth.frames_root, out_root, "--prefetch", prefetch)) == STORAGE_FAULT
    )
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert line.startswith(
        f"write {out_root}/{second}.tar: cannot reach S3 endpoint 127.0.0.1:{s3_server.port}"
    )

    s3_server.start()
    first = synth.videos[0].video_id
    kept = storage.read_bytes(f"{out_root}/{first}.tar")
    caplog.clear()
    monkeypatch.setattr(storage, "write_bytes", write_bytes)
    assert main(_mask_gen_args(manifest, synth.frames_root, out_root, "--prefetch", prefetch)) == 0
    assert "1 done earlier, 2 to do" in caplog.text
    assert storage.read_bytes(f"{out_root}/{first}.tar") == kept
    report = jsonio.read_json(f"{out_root}/_reports/shard-0.json")
    assert report["resumed"] == [first] and sorted(report["done"] + report["empty"]) == sorted(
        v.video_id for v in synth.videos
    )
