"""synth: a valid YTVIS dataset with LV-VIS partitions, frames on disk, same bytes for the same seed."""

from __future__ import annotations

from wsovvis import synth, ytvis
from wsovvis.cli import main


def _tree_bytes(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_matches_its_frames_and_validates(tmp_path) -> None:
    dataset = synth.make_dataset(tmp_path / "d", num_videos=3, seed=4, min_frames=6, max_frames=8)
    data = ytvis.load_dataset(dataset.gt_json)
    assert [v["id"] for v in data["videos"]] == [v.ytvis_id for v in dataset.videos]
    for video, entry in zip(dataset.videos, data["videos"], strict=True):
        assert entry["file_names"] == [f"{video.video_id}/{name}" for name in video.frame_names]
        for name in entry["file_names"]:
            assert (tmp_path / "d" / "frames" / name).is_file()
    assert {c["partition"] for c in data["categories"]} == {0, 1, 2, 3}
    assert data["annotations"], "every video has at least one moving object by default"
    for ann in data["annotations"]:
        present = [s is not None for s in ann["segmentations"]]
        assert present == [b is not None for b in ann["bboxes"]] == [a is not None for a in ann["areas"]]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        main(
            [
                "synth",
                "--out",
                str(tmp_path / name),
                "--num-videos",
                "2",
                "--seed",
                str(seed),
                "--min_frames",
                "4",
                "--max_frames",
                "6",
            ]
        )
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    assert _tree_bytes(tmp_path / "a") != _tree_bytes(tmp_path / "c")


def test_videos_without_objects_have_no_annotations(tmp_path) -> None:
    dataset = synth.make_dataset(
        tmp_path, num_videos=2, seed=0, min_frames=3, max_frames=4, min_objects=0, max_objects=0
    )
    assert ytvis.load_dataset(dataset.gt_json)["annotations"] == []
