"""The chain on synthetic static-camera videos: plan-shards -> mask-gen (2 shards, motion) -> convert ->
evaluate (class-agnostic) reaches AP50 >= 0.5 against the videos' GT, and rerunning a finished shard changes
nothing."""

from __future__ import annotations

from pathlib import Path

from wsovvis import convert, evaluate, shards
from wsovvis.agnostic import make_agnostic
from wsovvis.maskgen import MaskGenConfig, mask_gen
from wsovvis.maskgen.motion import MotionBackend
from wsovvis.synth import make_dataset


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {p.as_posix(): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_plan_maskgen_convert_evaluate_reaches_ap50(tmp_path) -> None:
    dataset = make_dataset(tmp_path / "synth", num_videos=12, seed=11)
    manifest = str(tmp_path / "manifest.json")
    plan = shards.plan_shards(dataset.frames_root, 2, manifest)
    assert all(shard.videos for shard in plan.shards)
    out_root = tmp_path / "masks"
    for shard in plan.shards:
        mask_gen(MaskGenConfig(manifest, shard.index, dataset.frames_root, str(out_root)), MotionBackend())

    before = _snapshot(out_root)
    mask_gen(MaskGenConfig(manifest, 1, dataset.frames_root, str(out_root)), MotionBackend())
    assert _snapshot(out_root) == before

    tubes = str(tmp_path / "tubes.json")
    convert.convert(str(out_root), dataset.frames_root, tubes)
    gt = str(tmp_path / "gt_agnostic.json")
    make_agnostic(dataset.gt_json, gt)
    metrics = evaluate.evaluate(gt, tubes, class_agnostic=True)
    assert metrics["AP50"] >= 0.5, metrics
