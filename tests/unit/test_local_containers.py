"""The container runner of `pipeline run --local --containers`, against a fake Docker client (no daemon needed):
the real exit code is kept (kfp 2.17 lost it under podman), containers are removed after, images never pulled."""

from __future__ import annotations

import pytest

docker = pytest.importorskip("docker", reason="the docker SDK is not installed (pip install docker)")

from pipelines.local import _ContainerRuns  # noqa: E402
from wsovvis.errors import WsovvisError  # noqa: E402


class FakeContainer:
    def __init__(self, exit_code: int, output: list[bytes]) -> None:
        self.exit_code = exit_code
        self.output = output
        self.removed = False

    def logs(self, stream: bool, follow: bool):
        assert stream and follow
        return iter(self.output)

    def wait(self) -> dict:
        return {"StatusCode": self.exit_code}

    def remove(self, force: bool) -> None:
        self.removed = True


class FakeClient:
    def __init__(self, images: set[str], container: FakeContainer) -> None:
        self.known = images
        self.container = container
        self.run_args: dict = {}
        self.images = self
        self.containers = self

    def get(self, image: str) -> None:
        if image not in self.known:
            raise docker.errors.ImageNotFound(image)

    def run(self, **kwargs) -> FakeContainer:
        self.run_args = kwargs
        return self.container


COMMAND = ["sh", "-c", "...", "--executor_input", "{}", "--function_to_execute", "mask_gen"]


def test_a_failing_container_keeps_its_exit_code_and_is_removed_after_its_logs_are_read(capsys) -> None:
    container = FakeContainer(3, [b"step output\n", b"Traceback ...\nValueError: bad\n"])
    client = FakeClient({"reg/runtime:1-cpu"}, container)
    runs = _ContainerRuns({"reg/runtime:1": "reg/runtime:1-cpu"})
    code = runs(client, "reg/runtime:1", COMMAND, {"/root": {"bind": "/root"}}, auto_remove=True, user="0:0")
    assert code == 3
    assert client.run_args["auto_remove"] is False and client.run_args["image"] == "reg/runtime:1-cpu"
    assert client.run_args["user"] == "0:0" and client.run_args["detach"] is True
    assert container.removed
    assert "ValueError: bad" not in capsys.readouterr().out  # in its log; shown with --log-level DEBUG
    (run,) = runs.runs
    assert (run.function, run.image, run.exit_code) == ("mask_gen", "reg/runtime:1-cpu", 3)
    assert run.log_tail.splitlines()[-1] == "ValueError: bad"


def test_a_missing_image_is_not_pulled_and_names_the_build_command() -> None:
    client = FakeClient(set(), FakeContainer(0, []))
    with pytest.raises(WsovvisError, match=r"image reg/tools:1 is not built here: run `make images`"):
        _ContainerRuns({})(client, "reg/tools:1", COMMAND, {})
    assert client.run_args == {}


def test_a_containers_output_goes_to_its_steps_log_and_only_its_warnings_to_the_terminal(
    tmp_path, capsys, caplog
) -> None:
    import json
    import logging

    caplog.set_level(logging.INFO)
    folder = tmp_path / "run" / "convert"
    executor_input = json.dumps({"outputs": {"outputFile": str(folder / "executor_output.json")}})
    command = ["sh", "-c", "...", "--executor_input", executor_input, "--function_to_execute", "convert"]
    output = [
        b"[KFP Executor 2026 INFO]: Got executor_input:\n{}\n[KFP Executor 2026 WARN",
        b"ING]: v1 skipped\n",
    ]
    client = FakeClient({"reg/tools:1"}, FakeContainer(0, output))

    assert _ContainerRuns({})(client, "reg/tools:1", command, {}) == 0

    assert capsys.readouterr().out == ""
    assert (folder / "step.log").read_text() == b"".join(output).decode()
    shown = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pipelines.local_output"]
    assert shown[0] == ("WARNING", "v1 skipped") and shown[1][1].startswith("convert: done in ")
