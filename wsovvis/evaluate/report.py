"""The evaluation report: one self-contained HTML page (images inlined) and a Markdown summary beside it.

The page shows the stats table, the per-size and per-category breakdowns, the warnings, and for the best and
worst videos (by the mean over their GT objects of the best video IoU any result of the same category reaches)
a strip of frames with the GT masks and the predicted masks overlaid: on the frames when ``img_root`` is given,
on grey otherwise. The Markdown (``<report stem>.md``) carries the same numbers without images, for the KFP UI.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import posixpath
from collections import defaultdict
from typing import Any

import numpy as np
from PIL import Image

from wsovvis import rle, storage
from wsovvis.errors import WsovvisError
from wsovvis.evaluate.inputs import Detection, EvalInputs, GtObject, Video
from wsovvis.evaluate.ytvoseval import STAT_NAMES, video_ious

log = logging.getLogger(__name__)

STRIP_HEIGHT = 132
FRAMES_PER_STRIP = 6
VIDEOS_EACH = 3
CATEGORY_ROWS = 15
COLORS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (0, 128, 128),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (255, 215, 0),
]
UNMATCHED = (230, 30, 30)
FILL = 0.3  # the share of a mask's colour in its interior; the frame shows through the rest
OUTLINE = 2  # pixels of a mask's edge drawn in its colour at full strength, at the strip's scale
HALO = (16, 16, 16)  # the line just outside each outline, so it reads on a frame of its own colour
STAT_TITLES = {
    "AP": "AP @[.50:.95]",
    "AP50": "AP @.50",
    "AP75": "AP @.75",
    "APs": "AP small",
    "APm": "AP medium",
    "APl": "AP large",
    "AR1": "AR maxDets 1",
    "AR10": "AR maxDets 10",
    "AR100": "AR maxDets 100",
    "ARs": "AR small",
    "ARm": "AR medium",
    "ARl": "AR large",
    "APb": "AP base (LV-VIS)",
    "APn": "AP novel (LV-VIS)",
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#1d2733;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #d8dee6;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#5b6675;font-size:13px}.meta code{background:#f1f4f8;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 10px;border-bottom:1px solid #e6eaef;
text-align:right}th{background:#f5f7fa;font-weight:600}td.l,th.l{text-align:left}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}.stat{border:1px solid #dfe4ea;border-radius:6px;
padding:8px 12px;min-width:120px;background:#fbfcfd}.stat .v{font-size:22px;font-weight:600}
.stat .k{font-size:12px;color:#5b6675}.stat.main{background:#eef5ff;border-color:#b9d3f5}
.bar{display:inline-block;height:9px;background:#4c8bd6;border-radius:2px;vertical-align:middle}
.barbox{display:inline-block;width:90px;background:#edf0f4;border-radius:2px;margin-left:6px}
.warn{background:#fff6e0;border:1px solid #f0d48a;border-radius:6px;padding:8px 12px;font-size:13px}
.video{border:1px solid #dfe4ea;border-radius:6px;padding:10px;margin:12px 0}
.video img{display:block;max-width:100%;margin:4px 0;border-radius:3px}
.row-label{font-size:12px;color:#5b6675;margin-top:6px}.legend span{display:inline-block;margin-right:12px;
font-size:12px}.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;
vertical-align:middle}
.scroll{max-height:420px;overflow-y:auto;border:1px solid #e6eaef;display:inline-block}
details summary{cursor:pointer;font-size:13px;color:#2b5da8}
.na{color:#9aa4b1}
"""


def _fmt(value: Any) -> str:
    """A fraction as a percentage; -1/None (undefined) as an em dash."""
    if value is None or value < 0:
        return "—"
    return f"{100 * value:.1f}"


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cell(value: Any) -> str:
    text = _fmt(value)
    if text == "—":
        return '<td class="na">—</td>'
    width = max(0.0, min(1.0, float(value))) * 90
    return f'<td>{text}<span class="barbox"><span class="bar" style="width:{width:.0f}px"></span></span></td>'


# --------------------------------------------------------------------------------------------------- images


def _decode(seg: rle.Rle | None) -> np.ndarray | None:
    return None if seg is None else rle.decode(seg).astype(bool)


def _frame_image(video: Video, frame: int, img_root: str | None) -> np.ndarray:
    if img_root is not None:
        try:
            data = storage.read_bytes(storage.join(img_root, video.file_names[frame]))
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert("RGB")
                if image.size != (video.width, video.height):
                    image = image.resize((video.width, video.height))
                return np.asarray(image).copy()
        except (OSError, ValueError, WsovvisError, Image.DecompressionBombError) as exc:
            log.warning("report: frame %s not readable (%s); drawing on grey", video.file_names[frame], exc)
    return np.full((video.height, video.width, 3), 96, dtype=np.uint8)


def css_color(color: tuple[int, int, int]) -> str:
    """A colour as the legend's swatches name it (the masks drawn in it are outlined in exactly this colour)."""
    return "rgb({},{},{})".format(*color)


def _edge(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` pixels of its outside (the frame's border counts as outside)."""
    inner = mask
    for _ in range(width):
        padded = np.pad(inner, 1)
        inner = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _tile_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame's mask at the strip's scale (width, height); an object smaller than a pixel there keeps one."""
    scaled = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)) >= 128
    if mask.any() and not scaled.any():
        rows, cols = np.nonzero(mask)
        scaled[int(rows.mean() * size[1] / mask.shape[0]), int(cols.mean() * size[0] / mask.shape[1])] = True
    return scaled


def draw_masks(
    background: np.ndarray, masks: list[tuple[np.ndarray, tuple[int, int, int]]], size: tuple[int, int]
) -> np.ndarray:
    """One tile of a strip: ``background`` (a frame) at ``size`` (width, height) with each (mask, colour) drawn
    as a light fill (:data:`FILL` of the colour) and an :data:`OUTLINE`-pixel outline in the colour itself, at
    full strength, with a dark line just outside it, so a mask reads on any frame, textured or of its colour.
    Fills first, then the outlines, so no fill washes out another mask's outline."""
    tile = np.asarray(Image.fromarray(background).resize(size, Image.BILINEAR)).astype(np.float32)
    scaled = [(_tile_mask(mask, size), np.array(color, np.float32)) for mask, color in masks]
    for mask, color in scaled:
        tile[mask] = (1 - FILL) * tile[mask] + FILL * color
    for mask, color in scaled:
        padded = np.pad(mask, 1)
        grown = mask | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
        tile[grown & ~mask] = HALO
        tile[_edge(mask, OUTLINE)] = color
    return tile.round().astype(np.uint8)


def _strip(
    video: Video,
    frames: list[int],
    layers: list[tuple[list[rle.Rle | None], tuple[int, int, int]]],
    backgrounds: dict[int, np.ndarray],
) -> str:
    """One JPEG (base64) of the frames side by side with the given masks drawn (:func:`draw_masks`)."""
    tiles = []
    size = (max(1, round(video.width * STRIP_HEIGHT / video.height)), STRIP_HEIGHT)
    for frame in frames:
        masks = [(mask, color) for segs, color in layers if (mask := _decode(segs[frame])) is not None]
        tiles.append(draw_masks(backgrounds[frame], [(m, c) for m, c in masks if m.any()], size))
        tiles.append(np.full((STRIP_HEIGHT, 4, 3), 255, dtype=np.uint8))
    buffer = io.BytesIO()
    # 4:4:4 chroma, so a thin outline keeps its colour
    Image.fromarray(np.concatenate(tiles[:-1], axis=1)).save(buffer, format="JPEG", quality=90, subsampling=0)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def video_title(video_id: int, videos: dict[int, Video] | None) -> str:
    """A video as both reports name it: its id and its frames' folder."""
    video = (videos or {}).get(video_id)
    return (
        f"video {video_id}"
        if video is None
        else f"video {video_id} ({posixpath.dirname(video.file_names[0])})"
    )


def _swatch(color: tuple[int, int, int], text: str) -> str:
    return f'<span><i class="swatch" style="background:{css_color(color)}"></i>{text}</span>'


def _video_panel(
    video: Video,
    gts: list[GtObject],
    dets: list[Detection],
    class_agnostic: bool,
    names: dict[int, str],
    img_root: str | None,
    summary: dict[str, Any],
) -> str:
    dets = sorted(dets, key=lambda d: -d.score)[:100]
    det_areas = np.stack([d.mask_areas for d in dets]) if dets else np.zeros((0, video.length), np.int64)
    gt_areas = np.stack([g.mask_areas for g in gts]) if gts else np.zeros((0, video.length), np.int64)
    groups = [[0 if class_agnostic else obj.category_id for obj in objs] for objs in (dets, gts)]
    ious = video_ious(dets, gts, det_areas, gt_areas, *(np.array(g, dtype=np.int64) for g in groups))
    # One colour per GT object, from which its strip layer, its best result's layer and its swatch all take it.
    gt_layers, det_layers, legend = [], [], []
    drawn_for: dict[int, int] = {}  # result index -> the GT whose colour it is drawn in
    for j, gt in enumerate(gts):
        color = COLORS[j % len(COLORS)]
        gt_layers.append((gt.segmentations, color))
        text = f"GT {gt.id} {html.escape(names.get(gt.category_id, str(gt.category_id)))}"
        if dets and ious[:, j].max() > 0:
            best = int(np.argmax(ious[:, j]))
            text += f" — best result IoU {ious[best, j]:.2f} (score {dets[best].score:.2f})"
            if best in drawn_for:
                text += f", the one drawn for GT {gts[drawn_for[best]].id}"
            else:
                drawn_for[best] = j
                det_layers.append((dets[best].segmentations, color))
        else:
            text += " — no overlapping result"
        legend.append(_swatch(color, text))
    others = [i for i in range(len(dets)) if i not in drawn_for][:3]
    # Unmatched results first, so each GT's best result is drawn on top of them.
    det_layers = [(dets[i].segmentations, UNMATCHED) for i in others] + det_layers
    if others:
        scores = ", ".join(f"{dets[i].score:.2f}" for i in others)
        legend.append(_swatch(UNMATCHED, f"top unmatched results (scores {scores})"))
    present = np.flatnonzero(gt_areas.any(0) | det_areas.any(0)) if (gts or dets) else np.arange(video.length)
    candidates = present if present.size else np.arange(video.length)
    picks = np.unique(
        np.linspace(0, len(candidates) - 1, min(FRAMES_PER_STRIP, len(candidates))).round().astype(int)
    )
    frames = [int(candidates[p]) for p in picks]
    backgrounds = {f: _frame_image(video, f, img_root) for f in frames}
    mean_iou = summary.get("mean_best_iou")
    return (
        f'<div class="video"><b>{html.escape(video_title(video.id, {video.id: video}))}</b> '
        f'<span class="meta">{video.length} frames'
        f" · {len(gts)} GT · {summary.get('num_results', len(dets))} results · mean best IoU "
        f"{'—' if mean_iou is None else f'{mean_iou:.2f}'} · frames {', '.join(str(f) for f in frames)}</span>"
        f'<div class="row-label">ground truth</div><img alt="GT masks" src="data:image/jpeg;base64,'
        f'{_strip(video, frames, gt_layers, backgrounds)}">'
        f'<div class="row-label">predictions</div><img alt="predicted masks" src="data:image/jpeg;base64,'
        f'{_strip(video, frames, det_layers, backgrounds)}">'
        f'<div class="legend">{"".join(legend)}</div></div>'
    )


# --------------------------------------------------------------------------------------------------- pages


def _pick_videos(per_video: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    scored = [v for v in per_video if v["mean_best_iou"] is not None]
    ranked = sorted(scored, key=lambda v: (-v["mean_best_iou"], v["video_id"]))
    best = ranked[:VIDEOS_EACH]
    worst = [v for v in reversed(ranked) if v not in best][:VIDEOS_EACH]
    return best, worst


def _category_rows(metrics: dict[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    with_gt = [c for c in metrics["per_category"] if c["num_gt"] > 0]
    ranked = sorted(with_gt, key=lambda c: (-c["AP"], -c["num_gt"], c["id"]))
    return ranked[:CATEGORY_ROWS], list(reversed(ranked[CATEGORY_ROWS:]))[:CATEGORY_ROWS], ranked


def _stats_keys(metrics: dict[str, Any]) -> list[str]:
    return list(STAT_NAMES) + [k for k in ("APb", "APn") if k in metrics]


def render_markdown(
    metrics: dict[str, Any], best: list[dict], worst: list[dict], videos: dict[int, Video] | None = None
) -> str:
    """The Markdown summary; ``videos`` (the GT's) name the videos as the HTML page does (:func:`video_title`)."""
    keys = _stats_keys(metrics)
    lines = [
        "# Evaluation report",
        "",
        f"GT `{metrics.get('gt', '?')}` · results `{metrics.get('results', '?')}` · {metrics['mode']} · "
        f"{metrics['num_videos']} videos, {metrics['num_gt']} GT objects, {metrics['num_results']} results",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---:|" * len(keys),
        "| " + " | ".join(_fmt(metrics[k]) for k in keys) + " |",
        "",
        "Values in %; — where undefined (no GT in that range).",
        "",
        "## By object size",
        "",
        "| size | GT objects | AP | AP50 | AR100 |",
        "|:--|--:|--:|--:|--:|",
    ]
    for size, row in metrics["per_size"].items():
        lines.append(
            f"| {size} | {row['num_gt']} | {_fmt(row['AP'])} | {_fmt(row['AP50'])} | {_fmt(row['AR100'])} |"
        )
    top, bottom, ranked = _category_rows(metrics)
    lines += ["", f"## Categories ({len(ranked)} with GT)", ""]
    for title, rows in (("Best", top[:10]), ("Worst", bottom[:10])):
        if not rows:
            continue
        lines += [f"**{title}**", "", "| category | GT | results | AP | AP50 |", "|:--|--:|--:|--:|--:|"]
        lines += [
            f"| {c['name']} | {c['num_gt']} | {c['num_results']} | {_fmt(c['AP'])} | {_fmt(c['AP50'])} |"
            for c in rows
        ]
        lines.append("")
    lines += ["## Videos (mean over GT objects of the best video IoU)", ""]
    for title, rows in (("Best", best), ("Worst", worst)):
        listed = (
            ", ".join(f"{video_title(v['video_id'], videos)}: {v['mean_best_iou']:.2f}" for v in rows) or "—"
        )
        lines.append(f"- {title}: {listed}")
    if metrics["warnings"]:
        lines += ["", "## Warnings", ""]
        lines += [f"- {key}: {count}" for key, count in metrics["warnings"].items()]
    return "\n".join(lines) + "\n"


def render_html(
    metrics: dict[str, Any],
    inputs: EvalInputs | None,
    best: list[dict],
    worst: list[dict],
    img_root: str | None,
) -> str:
    keys = _stats_keys(metrics)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>wsovvis evaluation report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Evaluation report</h1>",
        f"<div class='meta'>GT <code>{html.escape(str(metrics.get('gt', '?')))}</code> · results "
        f"<code>{html.escape(str(metrics.get('results', '?')))}</code> · <b>{metrics['mode']}</b> · "
        f"{metrics['num_videos']} videos · {metrics['num_gt']} GT objects · {metrics['num_results']} results "
        "(top 100 per video and category)</div>",
        "<h2>YouTube-VIS stats</h2><div class='stats'>",
    ]
    for key in keys:
        cls = "stat main" if key in ("AP", "APb", "APn") else "stat"
        parts.append(
            f"<div class='{cls}'><div class='v'>{_fmt(metrics[key])}</div><div class='k'>{key} · "
            f"{STAT_TITLES[key]}</div></div>"
        )
    parts.append("</div><div class='meta'>Percent; — where undefined (no GT object in that range).</div>")
    if metrics["warnings"]:
        items = "".join(f"<li>{html.escape(k)}: {v}</li>" for k, v in metrics["warnings"].items())
        parts.append(f"<h2>Warnings</h2><div class='warn'><ul>{items}</ul></div>")
    if "lvvis" in metrics:
        parts.append(
            "<h2>LV-VIS base / novel</h2><table><tr><th class='l'>categories</th>"
            + "".join(f"<th>{k}</th>" for k in STAT_NAMES)
            + "</tr>"
        )
        for side in ("base", "novel"):
            parts.append(
                f"<tr><td class='l'>{side}</td>"
                + "".join(f"<td>{_fmt(metrics['lvvis'][side][k])}</td>" for k in STAT_NAMES)
                + "</tr>"
            )
        parts.append("</table>")
    parts.append(
        "<h2>By object size</h2><div class='meta'>Mean area over the frames where the object is present: small "
        "&lt; 128², medium 128²–256², large &gt; 256².</div><table><tr><th class='l'>size</th><th>GT objects</th>"
        "<th>AP</th><th>AP50</th><th>AR100</th></tr>"
    )
    for size, row in metrics["per_size"].items():
        parts.append(
            f"<tr><td class='l'>{size}</td><td>{row['num_gt']}</td>{_cell(row['AP'])}{_cell(row['AP50'])}"
            f"{_cell(row['AR100'])}</tr>"
        )
    parts.append("</table>")

    top, bottom, ranked = _category_rows(metrics)
    header = (
        "<tr><th class='l'>category</th><th>id</th><th>GT</th><th>results</th><th>AP</th><th>AP50</th>"
        "<th>AR100</th></tr>"
    )

    def rows(items: list[dict]) -> str:
        return "".join(
            f"<tr><td class='l'>{html.escape(str(c['name']))}</td><td>{c['id']}</td><td>{c['num_gt']}</td>"
            f"<td>{c['num_results']}</td>{_cell(c['AP'])}{_cell(c['AP50'])}{_cell(c['AR100'])}</tr>"
            for c in items
        )

    without_gt = len(metrics["per_category"]) - len(ranked)
    parts.append(
        f"<h2>Categories</h2><div class='meta'>{len(ranked)} categories with GT; {without_gt} without GT "
        "(undefined, left out of the means).</div>"
    )
    if len(ranked) > 2 * CATEGORY_ROWS:
        parts.append(f"<h3>Best {len(top)} by AP</h3><table>{header}{rows(top)}</table>")
        parts.append(f"<h3>Worst {len(bottom)} by AP</h3><table>{header}{rows(bottom)}</table>")
        parts.append(
            f"<details><summary>All {len(ranked)} categories with GT</summary><div class='scroll'><table>"
            f"{header}{rows(ranked)}</table></div></details>"
        )
    else:
        parts.append(f"<table>{header}{rows(ranked)}</table>")

    parts.append(
        "<h2>Videos</h2><div class='meta'>Ranked by the mean, over a video's GT objects, of the best video IoU "
        "any result of the same category reaches"
        + (" (any category: class-agnostic)" if metrics["mode"] == "class-agnostic" else "")
        + ". Each GT object and its best result share a colour (outlined in it over a light fill); red: the "
        "top-scoring results that are nobody's best. "
        + (
            "Masks on the frames from <code>" + html.escape(str(img_root)) + "</code>."
            if img_root
            else "Masks on grey (pass --img_root FRAMES to draw them on the frames)."
        )
        + "</div>"
    )
    if inputs is not None:
        names = {c["id"]: str(c.get("name", c["id"])) for c in inputs.categories}
        gts_by_video: dict[int, list[GtObject]] = defaultdict(list)
        for gt in inputs.gts:
            gts_by_video[gt.video_id].append(gt)
        dets_by_video: dict[int, list[Detection]] = defaultdict(list)
        category_ids = {c["id"] for c in inputs.categories}
        agnostic = metrics["mode"] == "class-agnostic"
        for det in inputs.detections:
            if agnostic or det.category_id in category_ids:
                dets_by_video[det.video_id].append(det)
        for title, chosen in (("Best videos", best), ("Worst videos", worst)):
            parts.append(f"<h3>{title}</h3>")
            for summary in chosen:
                video = inputs.videos[summary["video_id"]]
                parts.append(
                    _video_panel(
                        video,
                        gts_by_video.get(video.id, []),
                        dets_by_video.get(video.id, []),
                        agnostic,
                        names,
                        img_root,
                        summary,
                    )
                )
    parts.append("</body></html>\n")
    return "".join(parts)


def markdown_path(report: str | os.PathLike[str]) -> str:
    """``x/report.html`` -> ``x/report.md`` (local path or URI)."""
    text = os.fspath(report)
    stem = text[: -len(".html")] if text.endswith(".html") else text
    return stem + ".md"


def write_report(
    report: str | os.PathLike[str],
    metrics: dict[str, Any],
    inputs: EvalInputs | None = None,
    *,
    img_root: str | os.PathLike[str] | None = None,
) -> tuple[str, str]:
    """Write the HTML report and its Markdown summary; returns both locations."""
    best, worst = _pick_videos(metrics["per_video"])
    root = os.fspath(img_root) if img_root is not None else None
    page = render_html(metrics, inputs, best, worst, root)
    summary = render_markdown(metrics, best, worst, inputs.videos if inputs is not None else None)
    md_uri = markdown_path(report)
    storage.write_text(report, page)
    storage.write_text(md_uri, summary)
    log.info("wrote %s and %s", os.fspath(report), md_uri)
    return os.fspath(report), md_uri
