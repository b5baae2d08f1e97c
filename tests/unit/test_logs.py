"""Progress where no terminal shows a bar (a pod's log): steady log lines, never silence."""

from __future__ import annotations

import logging

import pytest

from wsovvis.logs import progress


def test_without_a_terminal_progress_is_logged_at_the_configured_cadence(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WSOVVIS_PROGRESS_SECONDS", "0")  # a line after every item
    caplog.set_level(logging.INFO, logger="wsovvis.logs")

    items = list(progress(range(4), total=4, desc="convert", unit="video"))

    assert items == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records if r.name == "wsovvis.logs"]
    assert [line.split(" (")[0] for line in lines[:4]] == [f"convert: {n}/4 video" for n in range(1, 5)]
    assert lines[-1].startswith("convert: 4/4 video in ")
