"""The installed ``wsovvis`` command: the stage commands of :mod:`wsovvis.cli` and, on top of them, the two that
run the pipeline, ``pipeline`` (compile, run locally, submit) and ``demo``.

They live here, beside the pipeline they run, because the library must not import its application layer:
``wsovvis.cli`` (what a step's pod or the training job runs) knows only the stages. ``python -m wsovvis`` is that
stage-only command; this module is the console script's (and ``python -m pipelines`` in a checkout).
"""

from __future__ import annotations

from collections.abc import Sequence

from wsovvis import cli

# Command name -> module, as in wsovvis.cli, with this package's two commands on top.
COMMANDS = {**cli.SUBCOMMANDS, "pipeline": f"{__package__}.pipeline_cli", "demo": f"{__package__}.demo"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``wsovvis`` command line; return its exit code (:func:`wsovvis.cli.main`)."""
    return cli.main(argv, COMMANDS)


def run() -> int:
    """The ``wsovvis`` console script (:func:`wsovvis.cli.run`)."""
    return cli.run(COMMANDS)
