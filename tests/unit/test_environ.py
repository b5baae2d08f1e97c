"""environ_set: variables set inside a block are put back as they were, also after an error."""

from __future__ import annotations

import os

import pytest

from wsovvis.environ import environ_set


def test_variables_get_their_earlier_values_back_or_are_unset_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSOVVIS_TEST_KEPT", "before")
    monkeypatch.delenv("WSOVVIS_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError), environ_set({"WSOVVIS_TEST_KEPT": "inside", "WSOVVIS_TEST_NEW": "x"}):
        assert os.environ["WSOVVIS_TEST_KEPT"] == "inside" and os.environ["WSOVVIS_TEST_NEW"] == "x"
        raise RuntimeError("the block fails")
    assert os.environ["WSOVVIS_TEST_KEPT"] == "before"
    assert "WSOVVIS_TEST_NEW" not in os.environ
