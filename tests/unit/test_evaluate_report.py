"""The HTML report and its Markdown summary, the CLI front door, and evaluation on S3."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from tests.unit.evaluate_helpers import perfect_results, random_dataset, result, write
from wsovvis import jsonio, storage
from wsovvis.cli import main
from wsovvis.errors import InputError
from wsovvis.evaluate import evaluate
from wsovvis.evaluate.report import markdown_path


def write_frames(root, data: dict) -> None:
    for vid in data["videos"]:
        for name in vid["file_names"]:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (vid["width"], vid["height"]), (20, 200, 20)).save(path)


def degraded_results(data: dict) -> list[dict]:
    results = perfect_results(data)
    for res in results[1::2]:
        res["segmentations"] = [None for _ in res["segmentations"]]
    return results


def embedded_images(page: str) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
        for data in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    ]


def test_report_html_and_markdown(tmp_path):
    data = random_dataset(seed=11, num_videos=8)
    gt, res = write(tmp_path, data, degraded_results(data))
    write_frames(tmp_path / "frames", data)
    report = tmp_path / "out" / "report.html"
    metrics = evaluate(gt, res, lvvis=True, report=report, img_root=tmp_path / "frames")
    page = report.read_text()
    summary = (tmp_path / "out" / "report.md").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    for key in ("AP50", "ARl", "APb", "APn", "By object size", "Categories", "Best videos", "Worst videos"):
        assert key in page
    assert f"{100 * metrics['AP']:.1f}" in page and f"{100 * metrics['AP']:.1f}" in summary
    assert "| AP | AP50 |" in summary and "## By object size" in summary
    images = embedded_images(page)
    assert len(images) >= 4 and len(images) % 2 == 0  # a GT strip and a prediction strip per video
    # The frames are green: the strips were drawn on them, not on the grey stand-in.
    assert all(img[..., 1].mean() > img[..., 0].mean() for img in images)


def test_report_without_frames_draws_on_grey(tmp_path):
    data = random_dataset(seed=12, num_videos=4)
    gt, res = write(tmp_path, data, degraded_results(data))
    report = tmp_path / "report.html"
    evaluate(gt, res, report=report)
    images = embedded_images(report.read_text())
    assert images and "pass --img_root FRAMES" in report.read_text()
    assert all(abs(float(img[..., 0].mean()) - float(img[..., 1].mean())) < 40 for img in images)


def test_no_report_for_masks_that_cannot_be_decoded(tmp_path):
    # A result RLE whose runs do not add up to the frame would overrun the buffer decoding it for a strip: the
    # loader refuses it, so neither the metrics nor the report are written.
    data = random_dataset(seed=13, num_videos=2)
    results = perfect_results(data)
    first = results[0]
    frame = next(i for i, s in enumerate(first["segmentations"]) if s is not None)
    first["segmentations"] = list(first["segmentations"])
    first["segmentations"][frame] = {"size": [40, 40], "counts": "12"}
    gt, res = write(tmp_path, data, results)
    with pytest.raises(
        InputError, match=rf"result 0 .*segmentations\[{frame}\]\.counts .*add up to 3 pixels"
    ):
        evaluate(gt, res, report=tmp_path / "r.html")
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "r.html").exists()


def test_markdown_path():
    assert markdown_path("s3://b/run/report.html") == "s3://b/run/report.md"
    assert markdown_path("out/summary") == "out/summary.md"


def test_cli_writes_metrics_and_accepts_dash_flags(tmp_path):
    data = random_dataset(seed=14)
    gt, res = write(tmp_path, data, perfect_results(data))
    out = tmp_path / "metrics.json"
    code = main(["evaluate", "--gt", str(gt), "--results", str(res), "--class-agnostic", "--out", str(out)])
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["mode"] == "class-agnostic" and metrics["AP"] == pytest.approx(1.0)


def test_cli_bad_input_exits_with_one_line(tmp_path, caplog):
    data = random_dataset(seed=15)
    gt, res = write(tmp_path, data, [result(data["videos"][0]["id"], 1, 0.5, [])])
    assert main(["evaluate", "--gt", str(gt), "--results", str(res)]) == 1
    assert "'segmentations' has 0 entries" in caplog.text
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--lvvis", "--class_agnostic"]) == 2


def test_cli_refuses_class_agnostic_results_scored_per_category_in_one_line(tmp_path, caplog):
    data = random_dataset(seed=17, num_categories=3)
    results = perfect_results(data)
    for res in results:
        res["category_id"] = 1
    gt, res = write(tmp_path, data, results)
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--out", str(tmp_path / "m.json")]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith(
        f"{res}: every result has category 1 ('cat1'), the GT has 3 categories, ids 1-3;"
    )
    assert "--class-agnostic" in errors[0] and "--allow-category-mismatch" in errors[0]
    assert not (tmp_path / "m.json").exists()
    for flag in ("--class-agnostic", "--allow-category-mismatch", "--allow_category_mismatch"):
        assert main(["evaluate", "--gt", str(gt), "--results", str(res), flag]) == 0


@pytest.mark.s3
def test_evaluate_on_s3(tmp_path, s3_bucket):
    data = random_dataset(seed=16, num_videos=3)
    gt_local, res_local = write(tmp_path, data, degraded_results(data))
    gt = storage.join(s3_bucket, "gt", "val.json")
    res = storage.join(s3_bucket, "runs", "results.json")
    storage.upload(gt_local, gt)
    storage.upload(res_local, res)
    write_frames(tmp_path / "frames", data)
    frames = storage.join(s3_bucket, "frames")
    storage.upload_tree(tmp_path / "frames", frames)
    out = storage.join(s3_bucket, "eval", "metrics.json")
    report = storage.join(s3_bucket, "eval", "report.html")
    metrics = evaluate(gt, res, out=out, report=report, img_root=frames)
    assert jsonio.read_json(out)["AP"] == metrics["AP"] == evaluate(gt_local, res_local)["AP"]
    assert "<!DOCTYPE html>" in storage.read_text(report)
    assert "| AP | AP50 |" in storage.read_text(storage.join(s3_bucket, "eval", "report.md"))
    assert embedded_images(storage.read_text(report))
