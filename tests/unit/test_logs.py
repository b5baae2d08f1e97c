"""Progress where no terminal shows a bar (a pod's log): steady log lines, never silence."""

from __future__ import annotations

import io
import logging

import pytest

from wsovvis.logs import plural, progress


def test_without_a_terminal_progress_is_logged_at_the_configured_cadence(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WSOVVIS_PROGRESS_SECONDS", "0")  # a line after every item
    caplog.set_level(logging.INFO, logger="wsovvis.logs")

    items = list(progress(range(4), total=4, desc="convert", unit="video"))

    assert items == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records if r.name == "wsovvis.logs"]
    assert [line.split(" (")[0] for line in lines[:4]] == [f"convert: {n}/4 videos" for n in range(1, 5)]
    assert lines[-1].startswith("convert: 4/4 videos in ")


def test_counts_take_the_plural_they_need() -> None:
    assert [plural(n, "video") for n in (0, 1, 3)] == ["videos", "video", "videos"]
    assert plural(2, "frames") == "frames" and plural(5, "it") == "it"


def test_one_video_is_one_video(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("WSOVVIS_PROGRESS_SECONDS", "1000")
    caplog.set_level(logging.INFO, logger="wsovvis.logs")
    list(progress(range(1), total=1, desc="evaluate", unit="video"))
    assert caplog.records[-1].getMessage().startswith("evaluate: 1/1 video in ")


def test_a_log_line_never_shares_its_line_with_a_progress_bar() -> None:
    from tqdm import tqdm

    from wsovvis.logs import _Handler

    stream = io.StringIO()
    handler = _Handler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "a log line", None, None)
    with tqdm(total=3, file=stream, leave=False, mininterval=0) as bar:
        bar.update(1)
        handler.emit(record)
        bar.update(1)
    text = stream.getvalue()
    # the bar is cleared before the line is written (a carriage return and blanks), so the line starts a line
    assert "a log line\n" in text
    before = text[: text.index("a log line")]
    assert before.endswith("\r") or before.endswith("\n"), repr(before[-40:])
