"""The HTML report and its Markdown summary, the CLI front door, and evaluation on S3."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from pipelines.demo import print_evaluations
from tests.unit.evaluate_helpers import (
    annotation,
    categories,
    perfect_results,
    random_dataset,
    rect,
    result,
    video,
    write,
)
from wsovvis import jsonio, storage
from wsovvis.cli import main
from wsovvis.errors import InputError
from wsovvis.evaluate import STAT_NAMES, evaluate, stats_line
from wsovvis.evaluate.report import FILL, HALO, STRIP_HEIGHT, draw_masks, markdown_path
from wsovvis.evaluate.step import OUTPUT_VERSION
from wsovvis.workspace import stage_root


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


def test_a_mask_is_its_colour_at_full_strength_on_its_edge_over_a_light_fill():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)  # textured, as the demo's frames
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:20, 10:30] = True
    color = (255, 127, 14)
    tile = draw_masks(frame, [(mask, color)], (40, 30)).astype(int)
    interior = np.zeros_like(mask)
    interior[7:18, 12:28] = True  # two pixels in from the edge
    edge = mask & ~interior
    halo = np.zeros_like(mask)  # the pixels beside the mask (not its corners' diagonals)
    halo[[4, 20], 10:30] = True
    halo[5:20, [9, 30]] = True
    assert (tile[edge] == color).all()
    blend = np.round((1 - FILL) * frame[interior] + FILL * np.array(color))
    assert np.abs(tile[interior] - blend).max() <= 1
    assert (tile[halo] == HALO).all()
    outside = ~(mask | halo)
    assert (tile[outside] == frame[outside]).all()


def square(rows: tuple[int, int], cols: tuple[int, int]) -> dict:
    return rect(40, 40, rows, cols)


def test_each_overlay_is_outlined_in_its_legend_swatch_colour(tmp_path):
    # Two GT objects in one video, each found by a result: each GT and its best result are outlined in the colour
    # of that GT's swatch, at full strength (but for JPEG's few levels), over a light fill of the grey frame.
    shapes = [((4, 16), (4, 16)), ((20, 36), (18, 36))]
    data = {
        "videos": [video(1, 1, 40, 40)],
        "annotations": [annotation(j + 1, 1, j + 1, [square(*shape)]) for j, shape in enumerate(shapes)],
        "categories": categories(2),
    }
    gt, res = write(tmp_path, data, perfect_results(data))
    evaluate(gt, res, report=tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    legend = re.findall(r'class="swatch" style="background:rgb\((\d+),(\d+),(\d+)\)"></i>GT (\d+)', page)
    swatches = {int(gt_id): tuple(int(c) for c in rgb) for *rgb, gt_id in legend}
    assert sorted(swatches) == [1, 2] and swatches[1] != swatches[2]
    size = (STRIP_HEIGHT, STRIP_HEIGHT)
    grey = np.full((40, 40, 3), 96, dtype=np.uint8)
    for strip in embedded_images(page):  # the GT strip, then the predictions' strip
        assert strip.shape[:2] == size
        for j, shape in enumerate(shapes):
            color = np.array(swatches[j + 1])
            mask = np.zeros((40, 40), dtype=bool)
            mask[slice(*shape[0]), slice(*shape[1])] = True
            drawn = draw_masks(grey, [(mask, swatches[j + 1])], size).astype(int)
            outline = (drawn == color).all(-1)
            fill = (drawn != grey[0, 0]).any(-1) & ~outline & ~(drawn == HALO).all(-1)
            assert outline.sum() > 100 and fill.sum() > 100
            assert np.median(np.abs(strip[outline].astype(int) - color).max(-1)) <= 12
            assert np.median(np.abs(strip[fill].astype(int) - drawn[fill]).max(-1)) <= 6
            # light: the fill is nearer the frame's grey than the swatch's colour
            assert (np.abs(drawn[fill] - 96).max(-1) < np.abs(drawn[fill] - color).max(-1)).all()


def test_markdown_names_the_videos_as_the_html_does(tmp_path):
    data = random_dataset(seed=18, num_videos=8)
    gt, res = write(tmp_path, data, degraded_results(data))
    evaluate(gt, res, report=tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    summary = (tmp_path / "report.md").read_text()
    in_html = re.findall(r"<b>(video \d+ \([^)<]*\))</b>", page)
    in_markdown = re.findall(r"video \d+ \([^)]*\)", summary.split("## Videos", 1)[1])
    assert len(in_html) == 6 and in_html == in_markdown
    assert in_html[0].endswith(f"(video{in_html[0].split()[1]})")  # its frames' folder


def test_terminal_summaries_show_a_dash_where_a_stat_is_undefined(tmp_path, capsys, caplog):
    metrics = {name: 0.5 for name in STAT_NAMES} | {"APm": -1.0, "ARl": -1.0}
    assert stats_line(metrics) == (
        "AP 0.5000  AP50 0.5000  AP75 0.5000  APs 0.5000  APm —  APl 0.5000  AR1 0.5000  AR10 0.5000  "
        "AR100 0.5000  ARs 0.5000  ARm 0.5000  ARl —"
    )
    # the demo's (and pipeline run's) summary of the evaluations under a work root
    metrics_json = storage.join(
        stage_root(str(tmp_path / "work"), "evaluate", OUTPUT_VERSION), "x", "metrics.json"
    )
    jsonio.write_json(
        metrics_json, metrics | {"mode": "class-agnostic", "num_videos": 2, "results": "s3://b/tubes.json"}
    )
    print_evaluations(str(tmp_path / "work"), "wsovvis demo")
    stats = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  AP "))
    assert "APm —  APl 0.500" in stats and "-1" not in stats
    # evaluate's own log line: every stat, a dash for those without GT in their range (all large here)
    data = random_dataset(seed=19)
    gt, res = write(tmp_path, data, perfect_results(data))
    caplog.set_level("INFO", logger="wsovvis.evaluate")
    evaluate(gt, res)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("AP "))
    assert "APl —" in line and "ARl —" in line and "-1" not in line


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
