"""The documentation a user reads: every relative link of the README and docs/ leads somewhere, the README and the
user guide (docs/guide) carry nothing of the machines the project is built on, and the guide's code for writing a
ground truth writes one that the stages accept."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
USER_DOCS = [ROOT / "README.md", ROOT / "docs" / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
LINKED_DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "manifests").rglob("*.md")),
    ROOT / "third_party" / "README.md",
]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
# Paths that exist only on the machines the project is built on, outside code examples a user runs.
BUILD_MACHINE_PATHS = re.compile(r"(?<![\w.~-])/(?:work|home|tmp|root)/|/opt/pypi")
# Notes for the people who build the project; anywhere, code included.
BUILD_MACHINE_NOTES = (
    "../shared/",
    "this machine",
    "these machines",
    "2-core",
    "freshly laid",
    "busy cores",
    "machines a and b",
)
HERE_HEADING = re.compile(r"^#{1,6}\s+here\b", re.MULTILINE | re.IGNORECASE)


def without_fences(text: str) -> str:
    return FENCE.sub("", text)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown``: lower case, punctuation dropped, spaces to hyphens,
    ``-1``, ``-2``... for repeats."""
    anchors: set[str] = set()
    for _, title in HEADING.findall(without_fences(markdown)):
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-")
        candidate, repeat = slug, 0
        while candidate in anchors:
            repeat += 1
            candidate = f"{slug}-{repeat}"
        anchors.add(candidate)
    return anchors


def broken_links(doc: Path) -> list[str]:
    text = INLINE_CODE.sub("", without_fences(doc.read_text(encoding="utf-8")))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        linked = (doc.parent / path_part).resolve() if path_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif (
            anchor
            and linked.suffix == ".md"
            and anchor not in github_anchors(linked.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target}: {linked.name} has no heading with that anchor")
    return broken


def build_machine_traces(text: str) -> list[str]:
    """What in ``text`` belongs to the machines the project is built on, not to a user's."""
    found = [match.group(0) for match in BUILD_MACHINE_PATHS.finditer(without_fences(text))]
    lowered = text.lower()
    found += [note for note in BUILD_MACHINE_NOTES if note in lowered]
    found += [match.group(0) for match in HERE_HEADING.finditer(text)]
    return found


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    assert broken_links(doc) == []


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_user_docs_carry_no_build_machine_path_or_note(doc: Path) -> None:
    traces = build_machine_traces(doc.read_text(encoding="utf-8"))
    assert traces == [], f"move these to the developer notes (docs/dev), phrased for contributors: {traces}"


def test_the_trace_check_finds_paths_in_prose_and_notes_anywhere_but_not_paths_in_user_examples() -> None:
    prose = (
        "Set `WSOVVIS_THIRD_PARTY_DIR=/work/rt/src` first; the evaluator is at ../shared/reference here.\n"
    )
    example = "```bash\npython benchmarks/convert.py --workdir /tmp/bench\n```\n"
    notes = "## Here: make the bundle\n\nMeasured on this 2-core machine, twice: machines A and B.\n"
    assert build_machine_traces(prose) == ["/work/", "../shared/"]
    assert build_machine_traces(example) == []
    assert build_machine_traces(notes) == ["2-core", "machines a and b", "## Here"]


def test_a_broken_link_or_anchor_is_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Title\n\n## A section: `code` too\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md#a-section-code-too) [missing](gone.md) [bad anchor](other.md#nowhere)\n"
        "[self](#top) `[not a link](gone.md)`\n\n# Top\n"
    )
    assert broken_links(doc) == [
        "gone.md: no such file",
        "other.md#nowhere: other.md has no heading with that anchor",
    ]


def gt_example() -> str:
    text = (ROOT / "docs" / "guide" / "data-and-weights.md").read_text(encoding="utf-8")
    block = text.split("<!-- gt-example:begin", 1)[1].split("<!-- gt-example:end -->", 1)[0]
    return block.split("```python\n", 1)[1].rsplit("```", 1)[0]


def test_the_guides_ground_truth_code_writes_a_dataset_the_stages_accept(tmp_path: Path) -> None:
    from wsovvis.evaluate import evaluate
    from wsovvis.ytvis import load_dataset

    rng = np.random.default_rng(0)
    for video in ("walk01", "park"):
        (tmp_path / "frames" / video).mkdir(parents=True)
        (tmp_path / "gt_masks" / video).mkdir(parents=True)
        for frame in range(4):
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
                tmp_path / "frames" / video / f"{frame:05d}.jpg"
            )
            if frame % 2 == 0:  # annotated on every other frame
                index_map = np.zeros((48, 64), np.uint8)
                index_map[5:20, 5:20] = 1
                index_map[25:40, 30 + frame : 50] = 2
                Image.fromarray(index_map).save(tmp_path / "gt_masks" / video / f"{frame:05d}.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", gt_example()], cwd=tmp_path, env=env, check=True)

    dataset = load_dataset(str(tmp_path / "gt.json"))
    assert [v["file_names"][1] for v in dataset["videos"]] == ["park/00001.jpg", "walk01/00001.jpg"]
    walk01 = next(v["id"] for v in dataset["videos"] if v["file_names"][0].startswith("walk01/"))
    categories = {(a["video_id"] == walk01, a["category_id"]) for a in dataset["annotations"]}
    assert categories == {(True, 1), (True, 2), (False, 1)}
    assert all(a["segmentations"][1] is None for a in dataset["annotations"])
    metrics = evaluate(
        str(tmp_path / "gt.json"), str(tmp_path / "gt.json"), img_root=str(tmp_path / "frames")
    )
    assert metrics["AP"] == 1.0
