"""The WS-OVVIS pipeline: prepare -> plan-shards -> ParallelFor(mask-gen) -> convert -> train -> evaluate, and
with CLIP weights, attribute -> evaluate --lvvis beside each class-agnostic evaluation.

Compiled by ``wsovvis pipeline compile`` (for a cluster: the images built from the checkout); the committed
``pipelines/wsovvis_pipeline.yaml`` names the fixed images (``--release``; a test keeps it in sync).
Big data moves as storage URIs (strings); small outputs are KFP artifacts. S3 credentials reach every pod from a
Secret and the endpoint from a ConfigMap (kfp-kubernetes), never as literals in the spec; the training job's pods
get them from the same Secret and ConfigMap. Their names are fixed at compile time unless the spec is compiled
with them as run parameters (``S3_NAME_PARAMS``; see ``build_pipeline`` for the KFP versions each runs on). Every task runs in one of the two images of ``wsovvis.images`` (chosen
at compile time, the training PyTorchJob's included) with CPU and memory requests and limits; the job's pods ask for
theirs from the same table.
"""

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from kfp import dsl, kubernetes

from wsovvis.images import RELEASE_IMAGES, RUNTIME_SEQFORMER_CONFIG, ImageNames
from wsovvis.k8s.placement import CONFIG_MAP_KEY_TO_ENV, JOB_POD_RESOURCES, PodResources, S3Source
from wsovvis.k8s.trainjob import DEFAULT_RUNTIME as TRAINJOB_RUNTIME

# The components, one folder each in components/: in a checkout that folder is the top-level package `components`
# beside this one; installed, it is this package's `components` (pyproject.toml's package-dir maps both folders
# under the name `wsovvis_pipelines`, so an install adds no generic top-level name).
COMPONENTS = "components" if __package__ == "pipelines" else f"{__package__}.components"


def _component(stage: str) -> Any:
    """The component ``components/<stage>/component.py`` defines (named like its folder)."""
    return getattr(import_module(f"{COMPONENTS}.{stage}.component"), stage)


attribute = _component("attribute")
convert = _component("convert")
evaluate = _component("evaluate")
make_agnostic = _component("make_agnostic")
mask_gen = _component("mask_gen")
plan_shards = _component("plan_shards")
prepare = _component("prepare")
train = _component("train")

PIPELINE_NAME = "wsovvis"
PIPELINE_DESCRIPTION = "Weakly-supervised open-vocabulary VIS: pseudo masks to SeqFormer"
MASK_GEN_PARALLELISM = (
    4  # ParallelFor's parallelism is a compile-time int in KFP 2.x: `pipeline compile --parallelism`
)
# One GPU per mask-gen pod. Constants: kfp.local cannot resolve pipeline parameters here inside a ParallelFor.
MASK_GEN_ACCELERATOR = "nvidia.com/gpu"
ATTRIBUTE_ACCELERATOR = MASK_GEN_ACCELERATOR
# The Secret's key names (those of KFP's own `mlpipeline-minio-artifact`). The default names of the Secret and the
# ConfigMap are the ones manifests/object-store creates and reads (tests/integration/test_object_store_defaults.py).
S3_SECRET_KEYS = S3Source().secret_keys
# The run parameters a spec compiled with `s3_names_as_params` has (`pipeline compile --s3-names-as-params`): the
# Secret's and the ConfigMap's names. Without it the names are literals of the spec.
S3_NAME_PARAMS = ("s3_secret_name", "s3_config_map_name")
# The first KFP backend that runs each kind of spec (docs/guide/cluster.md's "What runs where" gives the sources). Every spec: the
# driver of KFP < 2.15.0 rejects the `optional` field kfp-kubernetes writes into secretAsEnv/configMapAsEnv
# (kubeflow/pipelines#12495). Names as run parameters: the mask-gen and attribute tasks read them inside sub-DAGs
# (the ParallelFor, the conditions), which the driver resolves only since kubeflow/pipelines#13128 (2.17.0,
# cherry-picked into 2.16.1 by #13299).
MIN_KFP = "2.15.0"
MIN_KFP_S3_NAMES_AS_PARAMS = "2.16.1"

# Compile-time defaults (`pipeline compile --resources TASK=CPU,MEMORY`), as Kubernetes quantities. A task's request
# is also its limit, so the CPU quota the stage sizes its worker pools from (``wsovvis.resources``) is what the
# scheduler reserved. mask-gen's are per pod, i.e. per GPU. TRAIN_POD is each pod of the training job (Master and
# every Worker): requests only, as the job's pods hold /dev/shm in memory (wsovvis.k8s.placement.Placement).
TRAIN_POD = "train-pod"
TASK_RESOURCES = {
    "prepare": PodResources("1", "4Gi"),
    "plan-shards": PodResources("1", "2Gi"),
    "mask-gen": PodResources("8", "32Gi"),
    "convert": PodResources("8", "16Gi"),
    "make-agnostic": PodResources("1", "4Gi"),
    "train": PodResources("2", "8Gi"),
    TRAIN_POD: JOB_POD_RESOURCES,
    "evaluate": PodResources("4", "16Gi"),
    "attribute": PodResources("4", "16Gi"),
}


# What each parameter of the pipeline function means, in one line: `wsovvis pipeline params` lists them with their
# types and defaults (read from the function), and README's parameter table is generated from them. A parameter added
# to the function is a line here (a test fails while one is missing, or one is here that the function lacks).
PARAMETERS = {
    "frames_root": "the training videos' frames, <frames_root>/<video_id>/<frame>.jpg (local path or s3:// URI)",
    "work_root": "where every stage writes, <work_root>/<stage>/v<N>/<hash> (local path or s3:// URI)",
    "train_gt_json": "ground truth of the training videos (YTVIS JSON): the pseudo tubes are scored against it",
    "val_frames_root": "the validation videos' frames, which the trained model predicts on",
    "val_gt_json": "ground truth of the validation videos: the model is scored against it ('': no prediction)",
    "videos_list": "only these videos: a text file with one video id a line ('': every video under frames_root)",
    "num_shards": "mask-gen pods: the videos are split into this many shards of about equal frame counts",
    "mask_backend": "pseudo-mask generator: videocutler (VideoCutLER, needs the runtime) or motion (CPU)",
    "mask_config": "videocutler: its detectron2 config ('': CutLER's default); motion: a YAML of motion options",
    "mask_weights": "videocutler: model weights, a .pth path or s3:// URI",
    "confidence": "mask-gen keeps instances scoring at least this",
    "mask_device": "videocutler: torch device (cuda, cpu)",
    "max_errors": "fraction of a shard's videos allowed to fail before mask-gen fails the shard",
    "mask_gen_node_selector": "node selector of the mask-gen pods (JSON object)",
    "mask_gen_tolerations": "tolerations of the mask-gen pods (JSON list of Kubernetes tolerations)",
    "split_name": "the split's name recorded in the tube JSON's info",
    "skip_list": "videos to leave out of the tubes: a text file with one video id a line",
    "min_masks": "fewest mask PNGs a video needs to become tubes",
    "min_coverage": "fewest mask PNGs per frame of a video (a fraction) for it to become tubes",
    "link_iou": "convert joins fragmented instance ids at IoU >= this (0: off)",
    "d2_cfg_path": "SeqFormer's detectron2 config for training (default: VNext's, in the runtime image)",
    "d2_opts": "detectron2 config overrides for training, as a JSON list [KEY, VALUE, ...]",
    "train_weights": "initial weights of the trained model ('': the config's)",
    "train_launcher": "how train runs: pytorchjob (Training Operator), trainjob (Trainer v2) or local (in its pod)",
    "trainjob_runtime": "train_launcher=trainjob: the ClusterTrainingRuntime the TrainJob references",
    "train_namespace": "namespace of the training job",
    "train_workers": "Workers of the training job besides the Master",
    "gpus_per_worker": "GPUs of each pod of the training job",
    "train_timeout_seconds": "how long train waits for its job (0: no limit)",
    "train_node_selector": "node selector of the training job's pods (JSON object)",
    "train_tolerations": "tolerations of the training job's pods (JSON list)",
    "clip_model": "attribute: open_clip model name (e.g. ViT-B-32) or an open_clip model config JSON",
    "clip_weights": "attribute: CLIP checkpoint for that model ('': no open-vocabulary labels, attribute skipped)",
    "topk": "attribute: categories kept per tube",
    "alpha": "attribute: score = objectness^alpha * p^(1-alpha)",
    "clip_device": "attribute's device: cpu, or cuda (one GPU)",
    "s3_secret_name": "the Secret the pods' S3 keys come from (in the run's namespace and train_namespace)",
    "s3_config_map_name": "the ConfigMap the pods' S3 endpoint comes from (key endpoint)",
}


@dataclass(frozen=True)
class _TaskSettings:
    images: ImageNames
    resources: Mapping[str, PodResources]
    secret_keys: tuple[str, str]

    def apply(self, task: dsl.PipelineTask, kind: str, secret_name, config_map_name) -> dsl.PipelineTask:
        """The compile's image and resources for a ``kind`` task, and S3 settings from the Secret and ConfigMap
        as environment variables of its pod (``secret_name``, ``config_map_name``: literals or run parameters)."""
        task.set_container_image(self.images.matching(task.container_spec.image))
        resources = self.resources[kind]
        task.set_cpu_request(resources.cpu).set_cpu_limit(resources.cpu)
        task.set_memory_request(resources.memory).set_memory_limit(resources.memory)
        kubernetes.use_secret_as_env(
            task,
            secret_name=secret_name,
            secret_key_to_env=S3Source(secret_keys=self.secret_keys).secret_key_to_env,
        )
        kubernetes.use_config_map_as_env(
            task, config_map_name=config_map_name, config_map_key_to_env=CONFIG_MAP_KEY_TO_ENV
        )
        return task


def build_pipeline(
    parallelism: int = MASK_GEN_PARALLELISM,
    s3: S3Source | None = None,
    images: ImageNames | None = None,
    resources: Mapping[str, PodResources] | None = None,
    s3_names_as_params: bool = False,
):
    """The pipeline function, with what KFP takes only at compile time fixed: the mask-gen loop's parallelism,
    where every pod's S3 settings come from (``s3``: the Secret's name and key names, the ConfigMap's name), the
    images (default the fixed ``RELEASE_IMAGES`` of ``wsovvis.images``; a spec for a cluster names the built ones)
    and each task's resources (``resources`` overrides entries of ``TASK_RESOURCES``).

    The Secret's and ConfigMap's names are literals of the spec, which runs on KFP >= ``MIN_KFP``; with
    ``s3_names_as_params`` they are the run parameters ``S3_NAME_PARAMS`` instead (``s3``'s names their defaults),
    which needs KFP >= ``MIN_KFP_S3_NAMES_AS_PARAMS``: older drivers fail on the parameter inside the ParallelFor.
    """
    s3 = s3 or S3Source()
    settings = _TaskSettings(
        images or RELEASE_IMAGES, {**TASK_RESOURCES, **(resources or {})}, s3.secret_keys
    )
    s3_secret_keys = s3.secret_keys

    def wsovvis_pipeline(
        frames_root: str,
        work_root: str,
        train_gt_json: str = "",
        val_frames_root: str = "",
        val_gt_json: str = "",
        videos_list: str = "",
        num_shards: int = 4,
        mask_backend: str = "videocutler",
        mask_config: str = "",
        mask_weights: str = "",
        confidence: float = 0.6,
        mask_device: str = "cuda",
        max_errors: float = 0.05,
        mask_gen_node_selector: dict = {},  # noqa: B006 - KFP takes pipeline defaults from the signature
        mask_gen_tolerations: list = [],  # noqa: B006
        split_name: str = "train",
        skip_list: str = "",
        min_masks: int = 3,
        min_coverage: float = 0.2,
        link_iou: float = 0.0,
        d2_cfg_path: str = RUNTIME_SEQFORMER_CONFIG,
        d2_opts: list = [],  # noqa: B006
        train_weights: str = "",
        train_launcher: str = "pytorchjob",
        trainjob_runtime: str = TRAINJOB_RUNTIME,
        train_namespace: str = "kubeflow",
        train_workers: int = 0,
        gpus_per_worker: int = 1,
        train_timeout_seconds: int = 7 * 24 * 3600,
        train_node_selector: dict = {},  # noqa: B006
        train_tolerations: list = [],  # noqa: B006
        clip_model: str = "ViT-B-32",
        clip_weights: str = "",
        topk: int = 5,
        alpha: float = 0.5,
        clip_device: str = "cpu",
        s3_secret_name: str = s3.secret_name,
        s3_config_map_name: str = s3.config_map_name,
    ):
        def configured(task: dsl.PipelineTask, kind: str) -> dsl.PipelineTask:
            return settings.apply(task, kind, s3_secret_name, s3_config_map_name)

        prepare_task = configured(
            prepare(mask_backend=mask_backend, train_launcher=train_launcher), "prepare"
        )
        prepare_task.set_caching_options(False)

        # Never cached: it lists the frames, so a root that gained videos is re-planned; the manifest's URI is
        # derived from its content, so the steps keyed by it stay cached while the videos are the same.
        plan_task = configured(
            plan_shards(
                frames_root=frames_root, num_shards=num_shards, videos_list=videos_list, work_root=work_root
            ),
            "plan-shards",
        )
        plan_task.after(prepare_task).set_retry(3).set_caching_options(False)

        with dsl.ParallelFor(plan_task.outputs["Output"], parallelism=parallelism, name="shards") as shard:
            mask_task = configured(
                mask_gen(
                    shard=shard,
                    frames_root=frames_root,
                    work_root=work_root,
                    backend=mask_backend,
                    config=mask_config,
                    weights=mask_weights,
                    confidence=confidence,
                    device=mask_device,
                    max_errors=max_errors,
                ),
                "mask-gen",
            )
            mask_task.set_accelerator_type(MASK_GEN_ACCELERATOR).set_accelerator_limit(1)
            kubernetes.add_node_selector_json(mask_task, mask_gen_node_selector)
            kubernetes.add_toleration_json(mask_task, mask_gen_tolerations)

        convert_task = configured(
            convert(
                mask_roots=dsl.Collected(mask_task.outputs["Output"]),
                manifest_uri=plan_task.outputs["manifest_uri"],
                img_root=frames_root,
                work_root=work_root,
                split_name=split_name,
                skip_list=skip_list,
                min_masks=min_masks,
                min_coverage=min_coverage,
                link_iou=link_iou,
            ),
            "convert",
        )
        convert_task.set_retry(3)

        def scored(display_name: str, gt_json, results_json, img_root, *, lvvis: bool) -> None:
            """Class-agnostic AP of tubes, or with ``lvvis`` per-category AP/APb/APn of labelled results."""
            task = evaluate(
                gt_json=gt_json,
                results_json=results_json,
                img_root=img_root,
                work_root=work_root,
                class_agnostic=not lvvis,
                lvvis=lvvis,
            )
            configured(task, "evaluate").set_display_name(display_name).set_retry(3)

        def attribute_and_evaluate(name: str, gt_json, results_json, img_root) -> None:
            """CLIP labels for the tubes (one GPU with clip_device=cuda), scored with LV-VIS AP/APb/APn."""

            def label(device: str) -> dsl.PipelineTask:
                task = attribute(
                    results_json=results_json,
                    img_root=img_root,
                    vocab_json=gt_json,
                    work_root=work_root,
                    clip_model=clip_model,
                    clip_weights=clip_weights,
                    topk=topk,
                    alpha=alpha,
                    device=device,
                )
                configured(task, "attribute").set_display_name(f"attribute-{name}").set_retry(2)
                scored(f"evaluate-{name}-lvvis", gt_json, task.outputs["Output"], img_root, lvvis=True)
                return task

            with dsl.If(clip_weights != "", name=f"clip-weights-given-{name}"):
                with dsl.If(clip_device == "cuda", name=f"attribute-{name}-on-gpu"):
                    label("cuda").set_accelerator_type(ATTRIBUTE_ACCELERATOR).set_accelerator_limit(1)
                with dsl.Else(name=f"attribute-{name}-on-cpu"):
                    label("cpu")

        with dsl.If(train_gt_json != "", name="pseudo-tube-gt-given"):
            scored(
                "evaluate-pseudo-tubes",
                train_gt_json,
                convert_task.outputs["Output"],
                frames_root,
                lvvis=False,
            )
            attribute_and_evaluate("pseudo-tubes", train_gt_json, convert_task.outputs["Output"], frames_root)

        # The model learns one class from the tubes, so it predicts on and is scored against the val GT made
        # class-agnostic ('' without a val GT: then nothing is predicted).
        agnostic_task = configured(make_agnostic(gt_json=val_gt_json, work_root=work_root), "make-agnostic")
        agnostic_task.set_retry(3)

        train_task = configured(
            train(
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                launcher=train_launcher,
                train_json=convert_task.outputs["Output"],
                train_img_root=frames_root,
                val_json=agnostic_task.outputs["Output"],
                val_img_root=val_frames_root,
                work_root=work_root,
                d2_cfg_path=d2_cfg_path,
                d2_opts=d2_opts,
                weights=train_weights,
                namespace=train_namespace,
                num_workers=train_workers,
                gpus_per_worker=gpus_per_worker,
                timeout_seconds=train_timeout_seconds,
                trainjob_runtime=trainjob_runtime,
                runtime_image=settings.images.runtime,
                node_selector=train_node_selector,
                tolerations=train_tolerations,
                pod_resources=dataclasses.asdict(settings.resources[TRAIN_POD]),
                s3_secret_name=s3_secret_name,
                s3_secret_keys=list(s3_secret_keys),
                s3_config_map_name=s3_config_map_name,
                runtime_available=prepare_task.outputs["Output"],
            ),
            "train",
        )

        # Conditions name "Output" keys only: kfp.local silently skips a branch whose condition names another output.
        with dsl.If(train_task.outputs["Output"] != "", name="model-trained"):
            # The trained model as a Model artifact whose URI is the checkpoint's (registered, not copied).
            dsl.importer(
                artifact_uri=train_task.outputs["Output"], artifact_class=dsl.Model, reimport=False
            ).set_display_name("model")
            with dsl.If(agnostic_task.outputs["Output"] != "", name="val-gt-given"):
                scored(
                    "evaluate-model",
                    agnostic_task.outputs["Output"],
                    train_task.outputs["results_json"],
                    val_frames_root,
                    lvvis=False,
                )
                attribute_and_evaluate(
                    "model", val_gt_json, train_task.outputs["results_json"], val_frames_root
                )

    return dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)(
        wsovvis_pipeline if s3_names_as_params else _with_fixed(wsovvis_pipeline, s3)
    )


def _with_fixed(full: Callable[..., None], s3: S3Source) -> Callable[..., None]:
    """The pipeline function ``full`` less its parameters ``S3_NAME_PARAMS``: ``s3``'s names fill them in.

    ``dsl.pipeline`` takes a function's parameters from its signature and calls it with them in order, so the
    pipeline is written once, with every parameter, and this shows that signature less the two names."""
    signature = inspect.signature(full)
    kept = [p for p in signature.parameters.values() if p.name not in S3_NAME_PARAMS]
    fixed_names = {"s3_secret_name": s3.secret_name, "s3_config_map_name": s3.config_map_name}

    def wsovvis_pipeline(*args: Any, **kwargs: Any) -> None:
        bound = dict(zip([p.name for p in kept][: len(args)], args, strict=True))
        return full(**bound, **kwargs, **fixed_names)

    wsovvis_pipeline.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    wsovvis_pipeline.__annotations__ = {
        k: v for k, v in full.__annotations__.items() if k not in S3_NAME_PARAMS
    }
    return wsovvis_pipeline


wsovvis_pipeline = build_pipeline()
