"""wsovvis convert: exact tubes, skip rules and bad input, linker, determinism, atomicity, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.maskdata import SyntheticVideo, expected_instances, random_video, write_frames, write_masks
from wsovvis import masks, rle
from wsovvis.cli import main
from wsovvis.convert import ConvertOptions, convert
from wsovvis.errors import InputError, UsageError


def _tree(tmp_path: Path, videos: list[SyntheticVideo], *, as_tar: bool | None) -> tuple[Path, Path]:
    """Frames and masks on disk; as_tar None alternates folders and tars."""
    mask_root, img_root = tmp_path / "masks", tmp_path / "frames"
    for i, video in enumerate(videos):
        write_frames(video, img_root)
        write_masks(video, mask_root, as_tar=bool(i % 2) if as_tar is None else as_tar)
    return mask_root, img_root


def _videos(seed: int, count: int, **kwargs) -> list[SyntheticVideo]:
    rng = np.random.default_rng(seed)
    return [random_video(rng, f"vid{i:03d}", **kwargs) for i in range(count)]


def _check_tubes(data: dict, videos: list[SyntheticVideo]) -> None:
    by_name = {v.video_id: v for v in videos}
    anns_by_video: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        anns_by_video.setdefault(ann["video_id"], []).append(ann)
    for entry in data["videos"]:
        name = entry["file_names"][0].split("/")[0]
        video = by_name[name]
        assert entry["file_names"] == [f"{name}/{f}.jpg" for f in video.frames]
        assert (entry["height"], entry["width"], entry["length"]) == (
            video.height,
            video.width,
            len(video.frames),
        )
        expected = expected_instances(video)
        tubes = anns_by_video[entry["id"]]
        assert len(tubes) == len(expected)
        for ann, (instance, frames) in zip(tubes, sorted(expected.items()), strict=True):
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0
            assert ann["score"] == video.scores[instance]
            for t in range(len(video.frames)):
                if t not in frames:
                    assert (
                        ann["segmentations"][t] is None
                        and ann["bboxes"][t] is None
                        and ann["areas"][t] is None
                    )
                    continue
                mask = frames[t]
                assert isinstance(ann["segmentations"][t]["counts"], str)
                np.testing.assert_array_equal(rle.decode(ann["segmentations"][t]), mask)
                ys, xs = np.nonzero(mask)
                box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert ann["bboxes"][t] == [float(v) for v in box]
                assert ann["areas"][t] == int(mask.sum())


@pytest.mark.parametrize("as_tar", [False, True, None])
def test_tubes_decode_to_exactly_the_input_masks(tmp_path: Path, as_tar: bool) -> None:
    videos = _videos(1, 6, mask_every=1)
    mask_root, img_root = _tree(tmp_path, videos, as_tar=as_tar)
    out = tmp_path / "tubes.json"
    summary = convert(str(mask_root), str(img_root), str(out), ConvertOptions(workers=2))
    assert summary.videos_converted == 6 and not summary.skipped
    data = json.loads(out.read_text())
    assert data["categories"] == [{"id": 1, "name": "object"}]
    _check_tubes(data, videos)
    assert json.loads(Path(f"{out}.skipped.json").read_text())["videos_converted"] == 6


def test_frames_without_masks_are_null_and_count_against_coverage(tmp_path: Path) -> None:
    videos = _videos(2, 2, num_frames=9, mask_every=3)  # 3 of 9 frames masked: coverage 1/3
    mask_root, img_root = _tree(tmp_path, videos, as_tar=True)
    out = tmp_path / "tubes.json"
    convert(str(mask_root), str(img_root), str(out), ConvertOptions(min_masks=3, min_coverage=0.3, workers=1))
    _check_tubes(json.loads(out.read_text()), videos)
    with pytest.raises(InputError, match="no video"):
        convert(str(mask_root), str(img_root), str(out) + "2", ConvertOptions(min_coverage=0.34, workers=1))
    report = json.loads(Path(f"{out}2.skipped.json").read_text())
    assert {s["reason"].split(":")[0] for s in report["skipped"]} == {"low coverage"}


def _corrupt(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Seven videos: two good, five each with one kind of bad input; returns roots and id -> expected reason."""
    videos = _videos(3, 7, num_frames=5)
    mask_root, img_root = _tree(tmp_path, videos, as_tar=False)
    folder = mask_root / "vid002"
    (folder / "mask_00001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rgb = Image.new("RGB", (videos[3].width, videos[3].height), (1, 2, 3))
    rgb.save(mask_root / "vid003" / "mask_00002.png")
    big = np.zeros((videos[4].height + 4, videos[4].width), np.uint8)
    (mask_root / "vid004" / "mask_00000.png").write_bytes(masks.encode_png(big))
    (mask_root / "vid005" / "mask_00099.png").write_bytes(masks.encode_png(videos[5].index_maps["00000"]))
    for frame in (img_root / "vid006").iterdir():
        frame.unlink()
    (img_root / "vid006").rmdir()
    return (
        mask_root,
        img_root,
        {
            "vid002": "unreadable mask PNG",
            "vid003": "not an index map",
            "vid004": "size mismatch",
            "vid005": "unknown frame",
            "vid006": "no frames folder",
        },
    )


def test_each_bad_video_is_skipped_with_file_and_reason_and_the_rest_convert(tmp_path: Path) -> None:
    mask_root, img_root, expected = _corrupt(tmp_path)
    out = tmp_path / "tubes.json"
    summary = convert(str(mask_root), str(img_root), str(out), ConvertOptions(workers=2))
    assert summary.videos_converted == 2
    report = json.loads(Path(f"{out}.skipped.json").read_text())
    reasons = {s["video_id"]: s for s in report["skipped"]}
    assert set(reasons) == set(expected)
    for video_id, reason in expected.items():
        assert reasons[video_id]["reason"].startswith(reason), reasons[video_id]
        assert video_id in reasons[video_id]["file"]
    assert reasons["vid002"]["file"].endswith("mask_00001.png")
    assert reasons["vid005"]["file"].endswith("mask_00099.png")
    data = json.loads(out.read_text())
    assert [v["file_names"][0].split("/")[0] for v in data["videos"]] == ["vid000", "vid001"]


def test_skip_list_min_masks_and_empty_videos(tmp_path: Path) -> None:
    videos = _videos(4, 4, num_frames=6)
    videos[2].index_maps = {f: m for f, m in list(videos[2].index_maps.items())[:2]}
    videos[3].index_maps = {}
    videos[3].scores = {}
    mask_root, img_root = _tree(tmp_path, videos, as_tar=True)
    skip_list = tmp_path / "skip.txt"
    skip_list.write_text("# leave this one out\nvid001\n")
    out = tmp_path / "tubes.json"
    assert (
        main(
            [
                "convert",
                "--mask-root",
                str(mask_root),
                "--img-root",
                str(img_root),
                "--out-json",
                str(out),
                "--skip-list",
                str(skip_list),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    report = json.loads(Path(f"{out}.skipped.json").read_text())
    reasons = {s["video_id"]: s["reason"].split(":")[0] for s in report["skipped"]}
    assert reasons == {"vid001": "skip list", "vid002": "too few masks", "vid003": "no instances"}
    assert report["reasons"] == {"no instances": 1, "skip list": 1, "too few masks": 1}


def test_linker_joins_fragmented_ids_that_hand_over(tmp_path: Path) -> None:
    height, width = 30, 40
    video = SyntheticVideo("frag", height, width, [f"{i:05d}" for i in range(6)])
    for t, frame in enumerate(video.frames):
        index_map = np.zeros((height, width), np.uint8)
        index_map[5:15, 5 + t : 15 + t] = 1 if t < 3 else 2  # one object whose id changes at frame 3
        index_map[20:28, 30:38] = 3  # a second object present throughout: co-occurs with 1 and 2
        video.index_maps[frame] = index_map
    video.scores = {1: 0.9, 2: 0.6, 3: 0.8}
    mask_root, img_root = _tree(tmp_path, [video], as_tar=True)

    plain = convert(str(mask_root), str(img_root), str(tmp_path / "a.json"), ConvertOptions(workers=1))
    assert plain.annotations == 3
    linked = convert(
        str(mask_root), str(img_root), str(tmp_path / "b.json"), ConvertOptions(link_iou=0.5, workers=1)
    )
    assert linked.annotations == 2
    tube = json.loads((tmp_path / "b.json").read_text())["annotations"][0]
    assert all(seg is not None for seg in tube["segmentations"])
    assert tube["score"] == pytest.approx(0.75)
    strict = convert(
        str(mask_root), str(img_root), str(tmp_path / "c.json"), ConvertOptions(link_iou=0.95, workers=1)
    )
    assert strict.annotations == 3  # the hand-over overlap is 0.8: below this threshold nothing joins


def test_output_is_deterministic_across_runs_and_worker_counts(tmp_path: Path) -> None:
    mask_root, img_root = _tree(tmp_path, _videos(5, 5), as_tar=True)
    outputs = []
    for workers in (1, 2, 2):
        out = tmp_path / f"tubes-{len(outputs)}.json"
        convert(
            str(mask_root),
            str(img_root),
            str(out),
            ConvertOptions(workers=workers),
            skip_report=str(out) + ".r",
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_failed_conversion_leaves_no_partial_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mask_root, img_root = _tree(tmp_path, _videos(6, 4), as_tar=True)
    out = tmp_path / "out" / "tubes.json"
    out.parent.mkdir()
    out.write_text("previous complete output\n")
    calls = []

    def explode(index_map: np.ndarray) -> dict:
        calls.append(1)
        if len(calls) > 10:
            raise MemoryError("simulated crash in the middle of the run")
        return rle.encode_index_map(index_map)

    monkeypatch.setattr("wsovvis.convert.rle.encode_index_map", explode)
    with pytest.raises(MemoryError):
        convert(str(mask_root), str(img_root), str(out), ConvertOptions(workers=1))
    assert out.read_text() == "previous complete output\n"
    assert os.listdir(out.parent) == ["tubes.json"]


def test_cli_exits_non_zero_when_nothing_converts_and_on_bad_arguments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mask_root, img_root, _ = _corrupt(tmp_path)
    for good in ("vid000", "vid001"):
        for png in (mask_root / good).glob("*.png"):
            png.unlink()
    out = tmp_path / "tubes.json"
    assert (
        main(["convert", "--mask_root", str(mask_root), "--img_root", str(img_root), "--out_json", str(out)])
        == 1
    )
    assert not out.exists()
    assert "no video" in caplog.text and "skipped.json" in caplog.text
    with pytest.raises(SystemExit) as exc:
        main(["convert", "--mask_root", "m", "--img_root", "i", "--out_json", "o", "--min_coverage", "1.5"])
    assert exc.value.code == 2
    assert (
        main(["convert", "--mask_root", str(tmp_path / "absent"), "--img_root", "i", "--out_json", "o"]) == 2
    )
    with pytest.raises(UsageError):
        ConvertOptions(link_iou=0.0)


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux CPU affinity and at least 2 usable CPUs to give the command fewer than the machine has",
)
def test_default_worker_pool_is_sized_from_the_cpus_the_process_may_use_not_the_machine(tmp_path):
    mask_root, img_root = _tree(tmp_path, _videos(5, 3), as_tar=True)
    command = [sys.executable, "-m", "wsovvis", "convert", "--mask_root", str(mask_root)]
    command += ["--img_root", str(img_root), "--out_json", str(tmp_path / "tubes.json")]
    one_cpu = {min(os.sched_getaffinity(0))}

    done = subprocess.run(
        command,
        preexec_fn=lambda: os.sched_setaffinity(0, one_cpu),
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert ", 1 workers" in done.stderr
