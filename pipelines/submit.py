"""Submit the compiled pipeline to a KFP endpoint (the same as `kfp run create`)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wsovvis.errors import UsageError, WsovvisError

from .params import check as check_params

log = logging.getLogger(__name__)


class KfpApiError(WsovvisError):
    """The KFP API cannot be reached or refuses the run (exit 5, an infrastructure fault)."""

    exit_code = 5


def submit(
    host: str,
    params: dict[str, Any],
    *,
    namespace: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    enable_caching: bool | None = None,
    spec_path: str,
) -> str:
    """Create a run from the compiled spec at ``spec_path``; returns the run id.

    ``enable_caching`` None keeps each task's caching as compiled (prepare never cached); True or False
    overrides every task, which is what the kfp client does with any value but None.
    """
    import kfp
    import kfp_server_api
    import urllib3
    import yaml

    if not Path(spec_path).is_file():
        raise UsageError(
            f"{spec_path}: no compiled spec there; write one with `wsovvis pipeline compile` (or pass --spec)"
        )
    spec = next(yaml.safe_load_all(Path(spec_path).read_text()))
    check_params(params, spec_parameters=spec["root"].get("inputDefinitions", {}).get("parameters", {}))
    with _client_quieted():
        try:
            client = kfp.Client(host=host, namespace=namespace)
            run = client.create_run_from_pipeline_package(
                spec_path,
                arguments=params,
                run_name=run_name,
                experiment_name=experiment,
                namespace=namespace,
                enable_caching=enable_caching,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise KfpApiError(
                f"{host}: no KFP API answers there ({reason}); is --host right and the API reachable?"
            ) from exc
        except kfp_server_api.ApiException as exc:
            raise KfpApiError(f"{host}: the KFP API refused the run: {exc.status} {exc.reason}") from exc
    log.info("submitted run %s to %s (experiment %s)", run.run_id, host, experiment or "Default")
    return run.run_id


@contextlib.contextmanager
def _client_quieted() -> Iterator[None]:
    """Below DEBUG, without the kfp client's warning about old backends (the spec needs KFP >= 2.15.0 anyway) and
    urllib3's line per connection retry: an unreachable host is one error line."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    pool_log = logging.getLogger("urllib3.connectionpool")
    level = pool_log.level
    pool_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This client only works with Kubeflow Pipeline", FutureWarning)
            yield
    finally:
        pool_log.setLevel(level)
