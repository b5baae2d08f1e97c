"""Hostile inputs, one class at a time, through the real stages: each costs at most its video, never the run.

Classes (docs/dev/robustness.md): unsafe names and tar members, resuming that trusts content, bombs, frame order and
duplicates, content that is not what it claims, outputs that behave like any other tool's.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.maskdata import random_video, write_frames, write_masks
from wsovvis import jsonio, masks, rle, shards, storage
from wsovvis.agnostic import make_agnostic
from wsovvis.cli import main
from wsovvis.convert import ConvertOptions, convert
from wsovvis.errors import InputError
from wsovvis.evaluate import evaluate
from wsovvis.maskgen import MaskGenConfig, mask_gen
from wsovvis.maskgen.motion import MotionBackend
from wsovvis.synth import make_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("synth"), num_videos=3, seed=7, min_frames=6, max_frames=6)


def _videos(count: int, seed: int = 1, **kwargs):
    rng = np.random.default_rng(seed)
    return [random_video(rng, f"vid{i}", **kwargs) for i in range(count)]


def _mask_tree(tmp_path: Path, count: int = 3):
    videos = _videos(count)
    for video in videos:
        write_frames(video, tmp_path / "frames")
        write_masks(video, tmp_path / "masks", as_tar=True)
    return videos, tmp_path / "masks", tmp_path / "frames"


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def _skips(report: Path) -> dict[str, str]:
    return {s["video_id"]: s["reason"] for s in json.loads(report.read_text())["skipped"]}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` and holds almost nothing: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------------ 1. names


def test_plan_shards_skips_folders_whose_names_cannot_be_video_ids(tmp_path, caplog) -> None:
    frames = tmp_path / "frames"
    for video_id in ("good", "_reserved", "x" * 252, "caf\udce9"):
        (frames / video_id).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(frames / video_id / "00000.jpg")
    caplog.set_level(logging.WARNING)
    plan = shards.plan_shards(str(frames), 1, str(tmp_path / "manifest.json"))
    assert [v for s in plan.shards for v in s.videos] == ["good"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'_reserved'" in warned and "not valid UTF-8" in warned and "over the 250" in warned
    assert json.loads((tmp_path / "manifest.json").read_text())["num_videos"] == 1


def test_plan_shards_refuses_a_videos_list_with_a_path_in_it(tmp_path) -> None:
    frames = tmp_path / "frames" / "good"
    frames.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(frames / "00000.jpg")
    (tmp_path / "list.txt").write_text("good\n../../etc\n")
    with pytest.raises(InputError, match=r"list.txt: line 2: invalid video id '../../etc'"):
        shards.plan_shards(
            str(tmp_path / "frames"), 1, str(tmp_path / "m.json"), videos_list=str(tmp_path / "list.txt")
        )


def test_tar_members_that_are_links_devices_absolute_or_climbing_are_skipped_by_name(
    tmp_path, caplog
) -> None:
    videos, mask_root, img_root = _mask_tree(tmp_path, 1)
    video = videos[0]
    good = masks.read_video_masks(video.video_id, str(mask_root / "vid0.tar"))
    link = tarfile.TarInfo("vid0/mask_00001.png")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("mask_00002.png")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../outside.png"
    device = tarfile.TarInfo("mask_00003.png")
    device.type = tarfile.CHRTYPE
    members = [
        (f"vid0/{masks.mask_name(f)}", data)
        for f, data in good.pngs.items()
        if f not in ("00001", "00002", "00003")
    ]
    hostile = [
        link,
        hard,
        device,
        ("/abs/mask_00004.png", b"x"),
        ("../mask_00005.png", b"x"),
        ("other/mask_00006.png", b"x"),
    ]
    (mask_root / "vid0.tar").write_bytes(_tar([*hostile, *members]))
    caplog.set_level(logging.WARNING)

    loaded = masks.read_video_masks("vid0", str(mask_root / "vid0.tar"))

    assert set(loaded.pngs) == set(good.pngs) - {"00001", "00002", "00003"}
    assert loaded.pngs == {f: good.pngs[f] for f in loaded.pngs}
    warnings = [r.getMessage() for r in caplog.records]
    for name, why in [
        ("vid0/mask_00001.png", "symbolic link"),
        ("mask_00002.png", "hard link"),
        ("mask_00003.png", "device"),
        ("/abs/mask_00004.png", "absolute"),
        ("../mask_00005.png", "climbs"),
        ("other/mask_00006.png", "under 'vid0/'"),
    ]:
        assert any(f"member '{name}' skipped" in w and why in w for w in warnings), (name, warnings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "masks"]


def test_convert_reports_mask_entries_whose_names_cannot_be_video_ids(tmp_path) -> None:
    videos, mask_root, img_root = _mask_tree(tmp_path, 2)
    (mask_root / "vid1.tar").rename(mask_root / "bad\\name.tar")
    summary = convert(
        str(mask_root), str(img_root), str(tmp_path / "t.json"), ConvertOptions(workers=1, min_masks=1)
    )
    skips = _skips(Path(summary.skip_report))
    assert skips["bad\\name"].startswith("invalid video id 'bad\\\\name': contains a '\\'")
    assert skips["vid1"].startswith("no mask output")


def test_temporary_names_of_long_names_fit_the_filesystem(tmp_path) -> None:
    name = "v" * 250 + ".json"  # the longest name a video id may give
    storage.write_text(tmp_path / name, "{}\n")
    assert (tmp_path / name).read_text() == "{}\n"
    (tmp_path / f".{'v' * 241}.0123abcd.tmp").write_text("left by a kill")
    assert storage.remove_partial_writes(tmp_path, [name]) == 1


# ------------------------------------------------------------------------------------------ 2. resuming trusts content


def test_a_done_video_whose_tar_was_deleted_or_damaged_is_made_again(synth, tmp_path, caplog) -> None:
    manifest = str(tmp_path / "manifest.json")
    shards.plan_shards(synth.frames_root, 1, manifest)
    out = tmp_path / "out"
    config = MaskGenConfig(manifest, 0, synth.frames_root, str(out))
    mask_gen(config, MotionBackend())
    first = {p.name: p.read_bytes() for p in out.glob("*.tar")}
    deleted, damaged, kept = (f"{v.video_id}.tar" for v in synth.videos)
    (out / deleted).unlink()
    flipped = bytearray(first[damaged])
    flipped[len(flipped) // 2] ^= 0xFF
    (out / damaged).write_bytes(bytes(flipped))
    caplog.set_level(logging.WARNING)

    report = mask_gen(config, MotionBackend())

    assert {p.name: p.read_bytes() for p in out.glob("*.tar")} == first
    assert [o.video_id for o in report.outcomes if o.earlier_run] == [kept[: -len(".tar")]]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert f"{deleted} is missing" in warned and "differs from what the marker recorded" in warned


def test_convert_accounts_for_every_video_of_the_frames_root(tmp_path) -> None:
    videos, mask_root, img_root = _mask_tree(tmp_path, 3)
    (mask_root / "vid2.tar").unlink()  # mask generation made nothing for it
    summary = convert(
        str(mask_root), str(img_root), str(tmp_path / "t.json"), ConvertOptions(workers=1, min_masks=1)
    )
    assert summary.videos_seen == 3 and summary.videos_converted == 2
    assert _skips(Path(summary.skip_report)) == {
        "vid2": "no mask output: mask generation made nothing for it"
    }


# ------------------------------------------------------------------------------------------ 3. bombs


def test_bombs_cost_one_video_in_convert(tmp_path) -> None:
    videos, mask_root, img_root = _mask_tree(tmp_path, 6)
    for video_id, side in (("vid0", 9000), ("vid3", 30000)):  # under and over Pillow's own bomb limit
        bomb = masks.read_video_masks(video_id, str(mask_root / f"{video_id}.tar"))
        bomb.pngs[videos[0].frames[0]] = _png_header_only(side, side)
        (mask_root / f"{video_id}.tar").write_bytes(masks.pack_tar(video_id, bomb.pngs, bomb.sidecar))
    claims = tarfile.TarInfo("vid1/mask_00000.png")
    claims.size = 1 << 40  # claims a terabyte; the file is far shorter
    (mask_root / "vid1.tar").write_bytes(_tar([claims])[:4096])
    many = [(f"vid2/mask_{i:05d}.png", b"") for i in range(200)]
    (mask_root / "vid2.tar").write_bytes(_tar(many))
    (mask_root / "vid4.tar").write_bytes(gzip.compress(_tar([("vid4/mask_00000.png", b"\0" * (1 << 20))])))

    summary = convert(
        str(mask_root), str(img_root), str(tmp_path / "t.json"), ConvertOptions(workers=2, min_masks=1)
    )

    skips = _skips(Path(summary.skip_report))
    assert summary.videos_converted == 1
    assert skips["vid0"].startswith("size mismatch: mask is 9000x9000")
    assert skips["vid3"].startswith("unreadable mask PNG") and "decompression bomb" in skips["vid3"]
    assert skips["vid1"].startswith(
        "unsafe mask archive: member 'vid1/mask_00000.png' claims 1099511627776 bytes"
    )
    assert skips["vid2"].startswith("unsafe mask archive: more than")
    assert skips["vid4"].startswith("unsafe mask archive: a gzip-compressed tar")


def test_a_huge_mask_file_in_a_mask_folder_costs_one_video_unread(tmp_path) -> None:
    videos = _videos(2)
    for video in videos:
        write_frames(video, tmp_path / "frames")
        write_masks(video, tmp_path / "masks", as_tar=False)
    with open(tmp_path / "masks" / "vid0" / masks.mask_name(videos[0].frames[0]), "r+b") as handle:
        handle.truncate(1 << 40)  # sparse: claims a terabyte, takes no disk
    summary = convert(
        str(tmp_path / "masks"),
        str(tmp_path / "frames"),
        str(tmp_path / "t.json"),
        ConvertOptions(workers=1, min_masks=1),
    )
    assert summary.videos_converted == 1
    assert _skips(Path(summary.skip_report))["vid0"].startswith(
        f"unsafe mask archive: {masks.mask_name(videos[0].frames[0])} has 1099511627776 bytes"
    )


def test_a_frame_bomb_costs_one_video_in_mask_gen(synth, tmp_path) -> None:
    frames = tmp_path / "frames"
    storage.download_tree(synth.frames_root, frames)
    bombed = synth.videos[0]
    (frames / bombed.video_id / bombed.frame_names[2]).write_bytes(_png_header_only(40000, 40000))
    (frames / bombed.video_id / bombed.frame_names[2]).rename(frames / bombed.video_id / "00002.png")
    (frames / bombed.video_id / bombed.frame_names[2]).unlink(missing_ok=True)
    manifest = str(tmp_path / "m.json")
    shards.plan_shards(str(frames), 1, manifest)
    report = mask_gen(
        MaskGenConfig(manifest, 0, str(frames), str(tmp_path / "out"), max_errors=0.5), MotionBackend()
    )
    (failed,) = report.failed
    assert failed.video_id == bombed.video_id and "decompression bomb" in failed.reason
    assert len(report.ids("done") + report.ids("empty")) == 2


# ------------------------------------------------------------------------------------------ 4. order and duplicates


def test_frames_are_in_numeric_order_in_mask_gen_and_convert(tmp_path) -> None:
    frames = tmp_path / "frames" / "clip"
    frames.mkdir(parents=True)
    names = [f"frame_{i}.jpg" for i in (1, 2, 10)]
    for i, name in enumerate(names):
        Image.new("RGB", (32, 24), (i * 80, 40, 40)).save(frames / name)
    assert masks.list_frames(str(frames)) == names
    video = random_video(np.random.default_rng(3), "clip", num_frames=3, size=(24, 32))
    video.index_maps = {n[:-4]: m for n, m in zip(names, video.index_maps.values(), strict=True)}
    video.frames = [n[:-4] for n in names]
    write_masks(video, tmp_path / "masks", as_tar=True)
    convert(
        str(tmp_path / "masks"),
        str(tmp_path / "frames"),
        str(tmp_path / "t.json"),
        ConvertOptions(workers=1, min_masks=1),
    )
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["videos"][0]["file_names"] == [f"clip/{n}" for n in names]
    with tarfile.open(tmp_path / "masks" / "clip.tar") as tar:
        member_order = tar.getnames()[:3]
    assert member_order == [f"clip/mask_frame_{i}.png" for i in (1, 2, 10)]


def test_two_files_for_one_frame_are_a_clear_error_and_undecodable_names_are_skipped(
    tmp_path, caplog
) -> None:
    frames = tmp_path / "clip"
    frames.mkdir()
    for name in ("00000.jpg", "00001.jpg", "00001.png", "0000\udcff.jpg"):
        Image.new("RGB", (8, 8)).save(frames / name, format="PNG" if name.endswith("png") else "JPEG")
    caplog.set_level(logging.WARNING)
    with pytest.raises(InputError, match="00001.jpg and 00001.png are both frame '00001'; keep one"):
        masks.list_frames(str(frames))
    (frames / "00001.png").unlink()
    assert masks.list_frames(str(frames)) == ["00000.jpg", "00001.jpg"]
    assert "frame skipped: '0000\\udcff.jpg': not valid UTF-8" in caplog.text


# ------------------------------------------------------------------------------------------ 5. content


def test_a_jpeg_named_png_is_refused_as_a_mask(tmp_path) -> None:
    videos, mask_root, img_root = _mask_tree(tmp_path, 2)
    video = masks.read_video_masks("vid0", str(mask_root / "vid0.tar"))
    jpeg = io.BytesIO()
    Image.new("L", (videos[0].width, videos[0].height)).save(jpeg, format="JPEG")
    video.pngs[videos[0].frames[1]] = jpeg.getvalue()
    (mask_root / "vid0.tar").write_bytes(masks.pack_tar("vid0", video.pngs, video.sidecar))
    summary = convert(
        str(mask_root), str(img_root), str(tmp_path / "t.json"), ConvertOptions(workers=1, min_masks=1)
    )
    assert _skips(Path(summary.skip_report))["vid0"] == "not an index map: the file is JPEG, not a PNG"


def _gt(synth, tmp_path: Path, edit) -> Path:
    data = json.loads(Path(synth.gt_json).read_text())
    edit(data)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return path


def test_gt_segmentations_that_do_not_decode_are_an_error_naming_the_annotation(synth, tmp_path) -> None:
    def corrupt(data):
        ann = data["annotations"][1]
        frame = next(i for i, s in enumerate(ann["segmentations"]) if s)
        ann["segmentations"][frame]["counts"] = "\x7f\x7f not rle"

    gt = _gt(synth, tmp_path, corrupt)
    with pytest.raises(
        InputError, match=r"gt.json: annotation \d+ \(video \d+\): segmentations\[\d+\].counts is not"
    ):
        evaluate(gt, synth.gt_json)


def test_non_finite_numbers_are_the_same_error_in_make_agnostic_and_evaluate(synth, tmp_path) -> None:
    def nan_area(data):
        ann = data["annotations"][0]
        frame = next(i for i, a in enumerate(ann["areas"]) if a is not None)
        ann["areas"][frame] = float("nan")

    gt = _gt(synth, tmp_path, nan_area)
    for run in (lambda: make_agnostic(gt, tmp_path / "agnostic.json"), lambda: evaluate(gt, synth.gt_json)):
        with pytest.raises(InputError, match="gt.json: holds a number that is not finite"):
            run()
    (tmp_path / "overflow.json").write_text(gt.read_text().replace("NaN", "1e999"))
    with pytest.raises(InputError, match="overflow.json: holds a number that is not finite"):
        make_agnostic(tmp_path / "overflow.json", tmp_path / "agnostic.json")


def test_result_video_ids_that_are_not_scalars_are_a_validation_error(synth, tmp_path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"video_id": [1], "score": 0.5, "category_id": 1, "segmentations": []}]))
    with pytest.raises(InputError, match=r"result 0 \(video \[1\]\): 'video_id' must be an integer"):
        evaluate(synth.gt_json, results)


def test_the_report_says_how_many_results_the_100_per_video_cap_left_out(synth, tmp_path) -> None:
    gt = json.loads(Path(synth.gt_json).read_text())
    ann = gt["annotations"][0]
    video = next(v for v in gt["videos"] if v["id"] == ann["video_id"])
    blank = rle.encode_mask(np.zeros((video["height"], video["width"]), bool))
    results = [
        {
            "video_id": video["id"],
            "score": 1 - i / 1000,
            "category_id": ann["category_id"],
            "segmentations": [blank] * video["length"],
        }
        for i in range(130)
    ]
    (tmp_path / "r.json").write_text(json.dumps(results))
    # all of one category of the GT's four: scored per category as they are, not refused as class-agnostic
    metrics = evaluate(
        synth.gt_json, tmp_path / "r.json", report=tmp_path / "report.html", allow_category_mismatch=True
    )
    assert metrics["warnings"]["results_left_out_over_100_per_video_and_category"] == 30
    assert "results_left_out_over_100_per_video_and_category: 30" in (tmp_path / "report.md").read_text()


def test_gt_file_names_that_leave_the_image_root_are_refused(synth, tmp_path) -> None:
    gt = _gt(synth, tmp_path, lambda d: d["videos"][0]["file_names"].__setitem__(0, "../../etc/passwd"))
    with pytest.raises(InputError, match=r"file_names\[0\] '../../etc/passwd' is not a plain relative path"):
        evaluate(gt, synth.gt_json, report=tmp_path / "r.html", img_root=tmp_path)


# ------------------------------------------------------------------------------------------ 6. outputs


def test_written_files_follow_the_umask_also_when_replacing(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "x.json"
        target.write_text("old")
        target.chmod(0o600)
        jsonio.write_json(target, {"a": 1})
        fresh = tmp_path / "y.bin"
        storage.write_bytes(fresh, b"data")
        os.umask(0o027)
        storage.write_bytes(tmp_path / "z.bin", b"data")
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in (target, fresh, tmp_path / "z.bin")] == [
        "0o644",
        "0o644",
        "0o640",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["make-agnostic", "--in_json", "{gt}", "--out_json", "{gt}"],
            "--out_json {gt} is also the input --in_json",
        ),
        (
            ["evaluate", "--gt", "{gt}", "--results", "{d}/r.json", "--out", "{gt}"],
            "--out {gt} is also the input --gt",
        ),
        (
            [
                "evaluate",
                "--gt",
                "{gt}",
                "--results",
                "{d}/r.json",
                "--out",
                "{d}/r.md",
                "--report",
                "{d}/r.html",
            ],
            "--out and report.md are both {d}/r.md",
        ),
        (
            [
                "convert",
                "--mask_root",
                "{d}",
                "--img_root",
                "{d}/f",
                "--out_json",
                "{d}/t.json",
                "--skip_report",
                "{d}/t.json",
            ],
            "--out_json and --skip_report are both {d}/t.json",
        ),
        (
            [
                "plan-shards",
                "--frames_root",
                "{d}",
                "--num_shards",
                "1",
                "--out_manifest",
                "{d}/m.json",
                "--out_indices",
                "{d}/m.json",
            ],
            "--out_manifest and --out_indices are both {d}/m.json",
        ),
    ],
)
def test_an_output_on_an_input_or_on_another_output_is_refused_before_work(
    synth, tmp_path, caplog, argv, message
) -> None:
    gt = tmp_path / "gt.json"
    gt.write_bytes(Path(synth.gt_json).read_bytes())
    before = sorted(tmp_path.rglob("*"))
    fill = {"gt": str(gt), "d": str(tmp_path)}
    assert main([a.format(**fill) for a in argv]) == 2
    assert message.format(**fill) in caplog.text
    assert sorted(tmp_path.rglob("*")) == before and gt.read_bytes() == Path(synth.gt_json).read_bytes()
