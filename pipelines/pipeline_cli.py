"""``wsovvis pipeline compile|run|submit``: the front door onto this package (which, unlike wsovvis, imports kfp)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from wsovvis.cliutil import add_flag, positive_int
from wsovvis.errors import UsageError

log = logging.getLogger(__name__)

# Where `pipeline compile` writes and `pipeline submit` reads by default (the committed spec is compiled with
# --release into pipelines/wsovvis_pipeline.yaml).
COMPILED_SPEC = Path("out/wsovvis_pipeline.yaml")
PARAMS_EPILOG = "`wsovvis pipeline params` lists every pipeline parameter with its type, default and meaning."


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON (numbers, lists, booleans), else strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected key=value")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="compile the KFP pipeline, run it locally, or submit it to a KFP endpoint",
        description="The KFP pipeline: compile the spec, run it locally with kfp.local, or submit it.",
    )
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)

    compile_parser = actions.add_parser(
        "compile",
        help="write the compiled pipeline spec (one YAML)",
        description="Compile the pipeline into one YAML spec. Every task and the training job are named the images "
        "`make images` builds from this checkout (tagged <version>-<digest of the source>, so a code fix is a new "
        "image), or with --release the fixed images of the committed spec.",
    )
    add_flag(compile_parser, "--out", default=str(COMPILED_SPEC), help=f"default: {COMPILED_SPEC}")
    compile_parser.add_argument(
        "--release",
        action="store_true",
        help="name the fixed images (<default registry>/{tools,runtime}:<version>, whatever the environment says) "
        "instead of the built ones: what pipelines/wsovvis_pipeline.yaml, the committed spec, is compiled with",
    )
    add_flag(compile_parser, "--parallelism", type=positive_int, default=None, help="mask-gen pods at once")
    add_flag(
        compile_parser,
        "--s3_secret_keys",
        type=_key_pair,
        default=None,
        metavar="ACCESS,SECRET",
        help="key names of the S3 Secret (default accesskey,secretkey, as KFP's mlpipeline-minio-artifact)",
    )
    add_flag(
        compile_parser,
        "--s3_secret",
        default=None,
        metavar="NAME",
        help="the Secret every pod (the training job's too) reads the S3 keys from (default wsovvis-s3, "
        "manifests/object-store's); written into the spec",
    )
    add_flag(
        compile_parser,
        "--s3_config_map",
        default=None,
        metavar="NAME",
        help="the ConfigMap every pod reads the S3 endpoint from (default wsovvis-s3); written into the spec",
    )
    add_flag(
        compile_parser,
        "--s3_names_as_params",
        action="store_true",
        help="make the Secret's and ConfigMap's names the run parameters s3_secret_name and s3_config_map_name "
        "(defaults: --s3-secret, --s3-config-map); such a spec needs a newer KFP than the default one "
        "(docs/guide/cluster.md: What runs where)",
    )
    add_flag(
        compile_parser, "--registry", default=None, help="image registry of every task and the training job"
    )
    add_flag(
        compile_parser,
        "--tag",
        default=None,
        help="image tag of every task and the training job (default: <version>-<digest of the source>)",
    )
    add_flag(
        compile_parser,
        "--resources",
        type=_task_resources,
        action="append",
        default=[],
        metavar="TASK=CPU,MEMORY",
        help="CPU and memory (request = limit) of a task's pods, e.g. convert=16,64Gi (mask-gen: per GPU pod; "
        "train-pod: each pod of the training job, requests only)",
    )
    compile_parser.set_defaults(func=_compile)

    run_parser = actions.add_parser(
        "run",
        help="run the pipeline locally (kfp.local: subprocesses, or --containers: each step in its image)",
        epilog=PARAMS_EPILOG,
    )
    run_parser.add_argument("--local", action="store_true", required=True, help="run locally (the only mode)")
    run_parser.add_argument(
        "--containers",
        action="store_true",
        help="run every step in its image (kfp.local.DockerRunner on DOCKER_HOST), with data exchanged through an "
        "S3 server started for the run; local input paths are uploaded to it",
    )
    add_flag(run_parser, "--pipeline_root", default="out/kfp", help="local artifact root (default out/kfp)")
    add_flag(
        run_parser,
        "--out",
        default="out/containers",
        help="with --containers: the pipeline root, the S3 server's data and the copied work root (default "
        "out/containers)",
    )
    add_flag(
        run_parser, "--param", action="append", default=[], metavar="KEY=VALUE", help="a pipeline parameter"
    )
    run_parser.set_defaults(func=_run_local)

    submit_parser = actions.add_parser(
        "submit", help="create a run on a KFP endpoint (like `kfp run create`)", epilog=PARAMS_EPILOG
    )
    add_flag(submit_parser, "--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    add_flag(submit_parser, "--namespace", default=None)
    add_flag(submit_parser, "--experiment", default=None)
    add_flag(submit_parser, "--run_name", default=None)
    add_flag(
        submit_parser,
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline parameter",
    )
    add_flag(
        submit_parser,
        "--spec",
        default=str(COMPILED_SPEC),
        help=f"compiled spec (default {COMPILED_SPEC}, what `pipeline compile` writes)",
    )
    submit_parser.add_argument(
        "--no-cache",
        dest="enable_caching",
        action="store_const",
        const=False,
        default=None,
        help="run every step afresh (default: each step's caching as compiled)",
    )
    submit_parser.set_defaults(func=_submit)

    params_parser = actions.add_parser(
        "params",
        help="list every pipeline parameter: its type, default and meaning",
        description="List every parameter of the pipeline (what --param of run and submit takes).",
    )
    params_parser.add_argument("--markdown", action="store_true", help="as README's Markdown table")
    add_flag(
        params_parser, "--readme", default=None, help="rewrite the parameter table of this README instead"
    )
    params_parser.set_defaults(func=_params)


def _key_pair(text: str) -> tuple[str, str]:
    keys = tuple(part.strip() for part in text.split(","))
    if len(keys) != 2 or not all(keys):
        raise argparse.ArgumentTypeError(f"{text!r}: expected ACCESS_KEY_NAME,SECRET_KEY_NAME")
    return keys  # type: ignore[return-value]


def _task_resources(text: str) -> tuple[str, str, str]:
    task, sep, values = text.partition("=")
    parts = tuple(part.strip() for part in values.split(","))
    if not sep or not task.strip() or len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected TASK=CPU,MEMORY, e.g. convert=16,64Gi")
    return task.strip(), parts[0], parts[1]


def _compile(args: argparse.Namespace) -> int:
    from wsovvis.images import RELEASE_IMAGES, image_names
    from wsovvis.k8s.placement import PodResources, S3Source

    from .compile import compile_pipeline
    from .wsovvis_pipeline import MASK_GEN_PARALLELISM, S3_SECRET_KEYS, TASK_RESOURCES

    resources = {}
    for task, cpu, memory in args.resources:
        if task not in TASK_RESOURCES:
            raise UsageError(f"--resources {task}: not a task; one of {', '.join(TASK_RESOURCES)}")
        resources[task] = PodResources(cpu, memory)
    if args.release and (args.registry or args.tag):
        raise UsageError("--release names the fixed images: it takes no --registry or --tag")
    default = S3Source()
    s3 = S3Source(
        secret_name=args.s3_secret or default.secret_name,
        secret_keys=args.s3_secret_keys or S3_SECRET_KEYS,
        config_map_name=args.s3_config_map or default.config_map_name,
    )
    path = compile_pipeline(
        args.out,
        args.parallelism or MASK_GEN_PARALLELISM,
        s3,
        RELEASE_IMAGES if args.release else image_names(args.registry, args.tag),
        resources,
        s3_names_as_params=args.s3_names_as_params,
    )
    print(f"wrote {path}")
    return 0


def _run_local(args: argparse.Namespace) -> int:
    from . import params
    from .local import run_in_containers, run_local

    # with --containers the work root defaults to one on the run's S3 server
    params.check(parse_params(args.param), optional=("work_root",) if args.containers else ())
    if args.containers:
        from .demo import print_evaluations

        work = run_in_containers(parse_params(args.param), args.out)
        print_evaluations(str(work), "wsovvis pipeline run")
        print(f"\nwork root copied to {work}; the image of each step: {Path(args.out) / 'containers.json'}")
    else:
        run_local(parse_params(args.param), args.pipeline_root)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from .submit import submit

    run_id = submit(
        args.host,
        parse_params(args.param),
        namespace=args.namespace,
        experiment=args.experiment,
        run_name=args.run_name,
        enable_caching=args.enable_caching,
        spec_path=args.spec,
    )
    print(f"run {run_id} created on {args.host}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from . import params

    if args.readme:
        changed = params.update_readme(args.readme)
        print(f"{args.readme}: parameter table {'rewritten' if changed else 'already up to date'}")
    else:
        print(params.markdown_table() if args.markdown else params.listing())
    return 0
