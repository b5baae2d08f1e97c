"""The pipeline's parameters: each has its meaning, README's table is generated from them, a run or submit refuses
what the pipeline lacks, and a local run that needs a runtime missing here says which parameters run it here."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest

pytest.importorskip("kfp", reason="the pipeline needs kfp (pip install 'wsovvis[pipeline]')")

from pipelines import params  # noqa: E402 - after the skip
from pipelines.cli import main  # noqa: E402
from pipelines.local import check_runtime_here  # noqa: E402
from pipelines.wsovvis_pipeline import PARAMETERS, S3_NAME_PARAMS, build_pipeline  # noqa: E402
from wsovvis.errors import RuntimeMissingError, UsageError  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_pipeline_parameter_has_its_one_line_meaning_and_no_other_is_described() -> None:
    # the S3 names are run parameters of a spec compiled with --s3-names-as-params
    names = list(inspect.signature(build_pipeline(s3_names_as_params=True).pipeline_func).parameters)
    assert [n for n in names if not PARAMETERS.get(n, "").strip()] == [], "add a line to PARAMETERS"
    assert [n for n in PARAMETERS if n not in names] == [], "PARAMETERS names a parameter the pipeline lacks"
    assert all("\n" not in meaning for meaning in PARAMETERS.values())


def test_readme_parameter_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert params.with_table(text) == text, "stale: run `wsovvis pipeline params --readme README.md`"
    assert params.markdown_table() in text


def test_readme_table_is_rewritten_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{params.BEGIN}\n| old |\n{params.END}\n\nafter\n", encoding="utf-8")
    assert main(["pipeline", "params", "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "| old |" not in text and text.endswith(f"{params.END}\n\nafter\n")
    assert "| `frames_root` | str | required |" in text
    assert params.update_readme(readme) is False  # already up to date
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no parameter table"):
        params.update_readme(readme)


def test_pipeline_params_lists_every_parameter_with_type_default_and_meaning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["pipeline", "params"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [n for n in PARAMETERS if n not in S3_NAME_PARAMS]
    (shards,) = [line for line in lines if line.startswith("num_shards ")]
    assert shards.split(None, 3) == ["num_shards", "int", "4", PARAMETERS["num_shards"]]
    assert main(["pipeline", "params", "--markdown"]) == 0
    assert capsys.readouterr().out == params.markdown_table() + "\n"


def test_run_help_points_at_the_parameter_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pipeline", "run", "--help"])
    assert "`wsovvis pipeline params` lists every pipeline parameter" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"frame_root": "x"},
            "--param frame_root: the pipeline has no such parameter; did you mean frames_root",
        ),
        ({"num_shards": "many"}, '--param num_shards="many": expected int'),
        ({"confidence": True}, "--param confidence=true: expected float"),
        ({"d2_opts": "X"}, '--param d2_opts="X": expected list'),
        ({"zzz": 1}, "--param zzz: the pipeline has no such parameter; `wsovvis pipeline params` lists them"),
    ],
)
def test_check_refuses_what_the_pipeline_lacks(given: dict, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        params.check({"frames_root": "f", "work_root": "w", **given})
    assert str(raised.value).startswith(message)


def test_check_wants_the_required_parameters_but_those_the_caller_fills() -> None:
    with pytest.raises(UsageError, match=r"missing --param work_root=\.\.\.: required"):
        params.check({"frames_root": "f"})
    params.check({"frames_root": "f"}, optional=("work_root",))
    params.check({"frames_root": "f", "work_root": "w", "confidence": 1, "d2_opts": ["A", "1"]})


def test_a_mistyped_parameter_is_one_line_and_exit_2(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    argv = ["pipeline", "run", "--local", "--pipeline_root", str(tmp_path)]
    argv += ["--param", "frame_root=/data", "--param", "work_root=/w"]
    assert main(argv) == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "did you mean frames_root" in error.getMessage() and error.exc_info is None
    assert not list(tmp_path.iterdir())  # nothing ran


def _runtime_here() -> bool:
    from wsovvis.prepare.step import runtime_status

    return bool(runtime_status()["ok"])


@pytest.mark.skipif(
    _runtime_here(), reason="the CutLER/VNext runtime is set up here: nothing missing to report"
)
def test_a_local_run_needing_the_runtime_says_which_parameters_run_it_here(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeMissingError) as raised:
        check_runtime_here({"frames_root": "f", "work_root": "w"})
    message = str(raised.value)
    assert message.startswith("mask_backend=videocutler and train_launcher=pytorchjob need the patched")
    assert "--param mask_backend=motion --param mask_device=cpu --param train_launcher=local" in message

    with pytest.raises(RuntimeMissingError) as raised:
        check_runtime_here({"mask_backend": "motion", "train_launcher": "trainjob"})
    assert "to run here without it: --param train_launcher=local (" in str(raised.value)

    check_runtime_here({"mask_backend": "motion", "train_launcher": "local"})  # runs here

    argv = ["pipeline", "run", "--local", "--pipeline_root", str(tmp_path)]
    assert main([*argv, "--param", "frames_root=/data", "--param", "work_root=/w"]) == 3
    (error,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "--param mask_backend=motion" in error.getMessage() and error.exc_info is None
