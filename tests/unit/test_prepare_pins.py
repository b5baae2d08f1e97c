"""third_party/pins.json agrees with .gitmodules and the gitlinks recorded in the index."""

from __future__ import annotations

import configparser
import json
import subprocess

import pytest

from wsovvis.errors import UsageError
from wsovvis.prepare.pins import PINS_JSON, load_pins

ROOT = PINS_JSON.parents[1]


def test_pins_name_the_three_upstreams_at_full_commits():
    pins = load_pins()
    assert set(pins) == {"CutLER", "VNext", "detectron2"}
    assert pins["detectron2"].ref == "v0.6"


def test_gitmodules_urls_match_pins():
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".gitmodules")
    urls = {parser[s]["path"]: parser[s]["url"] for s in parser.sections()}
    assert urls == {f"third_party/{name}": pin.url for name, pin in load_pins().items()}


def test_gitlinks_are_at_the_pinned_commits():
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-s", "third_party"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        pytest.skip(f"not a git checkout: {out.stderr.strip()}")
    gitlinks = {
        path: sha
        for mode, sha, _stage, path in (
            line.replace("\t", " ").split(" ", 3) for line in out.stdout.splitlines()
        )
        if mode == "160000"
    }
    assert gitlinks == {f"third_party/{name}": pin.commit for name, pin in load_pins().items()}


def test_unknown_keys_are_rejected(tmp_path):
    data = json.loads(PINS_JSON.read_text())
    data["VNext"]["branch"] = "main"
    bad = tmp_path / "pins.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="branch"):
        load_pins(bad)
