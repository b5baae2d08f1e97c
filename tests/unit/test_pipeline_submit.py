"""`wsovvis pipeline submit` against a stand-in KFP API server: what the kfp client posts is what the backend runs."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.compile import SPEC_PATH

pytest.importorskip("kfp", reason="submitting needs kfp (pip install 'wsovvis[pipeline]')")
# the parameters the pipeline requires
REQUIRED = ["--param", "frames_root=s3://b/f", "--param", "work_root=s3://b/w"]
pytestmark = pytest.mark.filterwarnings("ignore:This client only works with Kubeflow Pipeline:FutureWarning")


class FakeKfpApi(BaseHTTPRequestHandler):
    """The few KFP v2beta1 endpoints `create_run_from_pipeline_package` calls; records the runs created."""

    runs: list[dict] = []

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/apis/v2beta1/healthz"):
            self._reply({"multi_user": False})
        elif self.path.startswith("/apis/v2beta1/experiments"):
            self._reply(
                {"experiments": [{"experiment_id": "exp-1", "display_name": "Default"}], "total_size": 1}
            )
        else:
            self.send_error(404)

    def do_POST(self) -> None:  # noqa: N802
        if self.path.startswith("/apis/v2beta1/runs"):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            type(self).runs.append(body)
            self._reply({"run_id": f"run-{len(self.runs)}", "experiment_id": body.get("experiment_id")})
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kfp_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[str, list[dict]]]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no kfp context file of the user's
    FakeKfpApi.runs = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfpApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakeKfpApi.runs
    server.shutdown()
    server.server_close()


def _caching(run: dict) -> dict[str, bool]:
    tasks = run["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    return {name: task.get("cachingOptions", {}).get("enableCache", False) for name, task in tasks.items()}


def test_submit_keeps_each_tasks_caching_as_compiled(kfp_api) -> None:
    host, runs = kfp_api

    args = ["--spec", str(SPEC_PATH), *REQUIRED]
    assert main(["pipeline", "submit", "--host", host, *args]) == 0

    (run,) = runs
    caching = _caching(run)
    assert caching["prepare"] is False and caching["plan-shards"] is False  # they always run
    assert caching["convert"] is True and caching["train"] is True
    assert run["runtime_config"]["parameters"]["frames_root"] == "s3://b/f"


def test_submit_no_cache_turns_caching_off_for_every_task(kfp_api) -> None:
    host, runs = kfp_api

    assert (
        main(["pipeline", "submit", "--host", host, "--spec", str(SPEC_PATH), *REQUIRED, "--no-cache"]) == 0
    )

    (run,) = runs
    assert set(_caching(run).values()) == {False}


def test_submit_takes_the_spec_compile_wrote_by_default_and_names_a_missing_one(
    kfp_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    host, runs = kfp_api
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSOVVIS_IMAGE_REGISTRY", raising=False)

    assert main(["pipeline", "submit", "--host", host, *REQUIRED]) == 2  # a usage error: nothing compiled yet
    assert "out/wsovvis_pipeline.yaml: no compiled spec there" in caplog.text and not runs

    assert main(["pipeline", "compile", "--tag", "fix-1"]) == 0
    assert main(["pipeline", "submit", "--host", host, *REQUIRED]) == 0
    (run,) = runs
    executors = run["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"]
    assert executors["exec-convert"]["container"]["image"] == "localhost:5001/wsovvis/tools:fix-1"


def test_submit_refuses_the_s3_names_a_default_spec_has_no_parameter_for_naming_the_compile_option(
    kfp_api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host, runs = kfp_api
    args = ["pipeline", "submit", "--host", host, *REQUIRED, "--spec", str(SPEC_PATH)]

    assert main([*args, "--param", "s3_secret_name=team-s3"]) == 2
    assert "--s3-secret NAME" in caplog.text and "--s3-names-as-params" in caplog.text and not runs

    spec = tmp_path / "spec.yaml"
    assert main(["pipeline", "compile", "--release", "--s3-names-as-params", "--out", str(spec)]) == 0
    assert main([*args[:-1], str(spec), "--param", "s3_secret_name=team-s3"]) == 0
    (run,) = runs
    assert run["runtime_config"]["parameters"]["s3_secret_name"] == "team-s3"


def test_submit_to_a_host_with_no_kfp_api_is_one_line_and_exit_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    host = f"http://127.0.0.1:{port}"

    assert main(["pipeline", "submit", "--host", host, "--spec", str(SPEC_PATH), *REQUIRED]) == 5

    (error,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert error.getMessage().startswith(f"{host}: no KFP API answers there (") and error.exc_info is None


def test_submit_refuses_a_parameter_the_pipeline_lacks_before_calling_the_api(
    kfp_api, caplog: pytest.LogCaptureFixture
) -> None:
    host, runs = kfp_api
    args = ["--spec", str(SPEC_PATH), *REQUIRED, "--param", "num_shard=8"]
    assert main(["pipeline", "submit", "--host", host, *args]) == 2
    assert "--param num_shard: the pipeline has no such parameter; did you mean num_shards" in caplog.text
    assert not runs
