"""The WS-OVVIS pipeline: prepare -> plan-shards -> ParallelFor(mask-gen) -> convert -> train -> evaluate.

Compiled to ``pipelines/wsovvis_pipeline.yaml`` (a test keeps it in sync): ``wsovvis pipeline compile``.
Big data moves as storage URIs (strings); small outputs are KFP artifacts. S3 credentials reach every pod from a
Secret and the endpoint from a ConfigMap (kfp-kubernetes), never as literals in the spec.
"""

from kfp import dsl, kubernetes

from components.convert.component import convert
from components.evaluate.component import evaluate
from components.make_agnostic.component import make_agnostic
from components.mask_gen.component import mask_gen
from components.plan_shards.component import plan_shards
from components.prepare.component import prepare
from components.train.component import train
from wsovvis.storage import ACCESS_KEY_ENV, ENDPOINT_ENV, SECRET_KEY_ENV, S3Settings

PIPELINE_NAME = "wsovvis"
MASK_GEN_PARALLELISM = (
    4  # ParallelFor's parallelism is a compile-time int in KFP 2.x: `pipeline compile --parallelism`
)
# One GPU per mask-gen pod. Constants: kfp.local cannot resolve pipeline parameters here inside a ParallelFor.
MASK_GEN_ACCELERATOR = "nvidia.com/gpu"
# The Secret's key names (those of KFP's own `mlpipeline-minio-artifact`); the Secret's name is a parameter.
S3_SECRET_KEYS = (S3Settings.access_key_key, S3Settings.secret_key_key)
S3_CONFIG_MAP_KEYS = {"endpoint": ENDPOINT_ENV}


def _with_storage_env(
    task: dsl.PipelineTask, secret_keys: tuple[str, str], secret_name, config_map_name
) -> dsl.PipelineTask:
    """S3 keys from the Secret and the endpoint from the ConfigMap, as environment variables of the step's pod."""
    access_key, secret_key = secret_keys
    kubernetes.use_secret_as_env(
        task,
        secret_name=secret_name,
        secret_key_to_env={access_key: ACCESS_KEY_ENV, secret_key: SECRET_KEY_ENV},
    )
    kubernetes.use_config_map_as_env(
        task, config_map_name=config_map_name, config_map_key_to_env=S3_CONFIG_MAP_KEYS
    )
    return task


def build_pipeline(parallelism: int = MASK_GEN_PARALLELISM, s3_secret_keys: tuple[str, str] = S3_SECRET_KEYS):
    """The pipeline function, with the mask-gen loop's parallelism and the Secret's key names fixed at compile
    time (KFP takes neither as a parameter)."""

    @dsl.pipeline(
        name=PIPELINE_NAME, description="Weakly-supervised open-vocabulary VIS: pseudo masks to SeqFormer"
    )
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
        d2_cfg_path: str = "/opt/src/VNext/projects/SeqFormer/configs/base_ytvis.yaml",
        d2_opts: list = [],  # noqa: B006
        train_weights: str = "",
        train_launcher: str = "pytorchjob",
        train_namespace: str = "kubeflow",
        train_workers: int = 0,
        gpus_per_worker: int = 1,
        train_timeout_seconds: int = 7 * 24 * 3600,
        s3_secret_name: str = S3Settings.secret_name,
        s3_config_map_name: str = "wsovvis-s3",
    ):
        prepare_task = prepare(mask_backend=mask_backend, train_launcher=train_launcher)
        prepare_task.set_caching_options(False)
        _with_storage_env(prepare_task, s3_secret_keys, s3_secret_name, s3_config_map_name)

        plan_task = plan_shards(frames_root=frames_root, num_shards=num_shards, videos_list=videos_list)
        plan_task.after(prepare_task).set_retry(3)
        _with_storage_env(plan_task, s3_secret_keys, s3_secret_name, s3_config_map_name)

        with dsl.ParallelFor(plan_task.outputs["Output"], parallelism=parallelism, name="shards") as shard:
            mask_task = mask_gen(
                manifest=plan_task.outputs["manifest"],
                shard=shard,
                frames_root=frames_root,
                work_root=work_root,
                backend=mask_backend,
                config=mask_config,
                weights=mask_weights,
                confidence=confidence,
                device=mask_device,
                max_errors=max_errors,
            )
            mask_task.set_accelerator_type(MASK_GEN_ACCELERATOR).set_accelerator_limit(1)
            kubernetes.add_node_selector_json(mask_task, mask_gen_node_selector)
            kubernetes.add_toleration_json(mask_task, mask_gen_tolerations)
            _with_storage_env(mask_task, s3_secret_keys, s3_secret_name, s3_config_map_name)

        convert_task = convert(
            mask_roots=dsl.Collected(mask_task.outputs["Output"]),
            img_root=frames_root,
            work_root=work_root,
            split_name=split_name,
            skip_list=skip_list,
            min_masks=min_masks,
            min_coverage=min_coverage,
            link_iou=link_iou,
        )
        convert_task.set_retry(3)
        _with_storage_env(convert_task, s3_secret_keys, s3_secret_name, s3_config_map_name)

        def evaluate_class_agnostic(display_name: str, gt_json, results_json, img_root) -> None:
            task = evaluate(
                gt_json=gt_json,
                results_json=results_json,
                img_root=img_root,
                work_root=work_root,
                class_agnostic=True,
                lvvis=False,
            )
            task.set_display_name(display_name).set_retry(3)
            _with_storage_env(task, s3_secret_keys, s3_secret_name, s3_config_map_name)

        with dsl.If(train_gt_json != "", name="pseudo-tube-gt-given"):
            evaluate_class_agnostic(
                "evaluate-pseudo-tubes", train_gt_json, convert_task.outputs["Output"], frames_root
            )

        train_task = train(
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            launcher=train_launcher,
            train_json=convert_task.outputs["Output"],
            train_img_root=frames_root,
            val_json=val_gt_json,
            val_img_root=val_frames_root,
            work_root=work_root,
            d2_cfg_path=d2_cfg_path,
            d2_opts=d2_opts,
            weights=train_weights,
            namespace=train_namespace,
            num_workers=train_workers,
            gpus_per_worker=gpus_per_worker,
            timeout_seconds=train_timeout_seconds,
            s3_secret_name=s3_secret_name,
            s3_secret_keys=list(s3_secret_keys),
            runtime_available=prepare_task.outputs["Output"],
        )
        _with_storage_env(train_task, s3_secret_keys, s3_secret_name, s3_config_map_name)

        with dsl.If(val_gt_json != "", name="val-gt-given"):
            agnostic_task = make_agnostic(gt_json=val_gt_json, work_root=work_root)
            agnostic_task.set_retry(3)
            _with_storage_env(agnostic_task, s3_secret_keys, s3_secret_name, s3_config_map_name)
            with dsl.If(train_task.outputs["Output"] != "", name="model-results-given"):
                evaluate_class_agnostic(
                    "evaluate-model",
                    agnostic_task.outputs["Output"],
                    train_task.outputs["Output"],
                    val_frames_root,
                )

    return wsovvis_pipeline


wsovvis_pipeline = build_pipeline()
