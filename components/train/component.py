"""train: SeqFormer on the pseudo tubes, as a PyTorchJob or a TrainJob (create-or-attach, wait, cancel on SIGTERM) or
locally."""

from kfp import dsl
from kfp.dsl import Metrics, Output, OutputPath

from wsovvis.images import RUNTIME_IMAGE


# The runtime image: the local launcher trains SeqFormer in this step's own process.
@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def train(
    run_id: str,
    launcher: str,
    train_json: str,
    train_img_root: str,
    val_json: str,
    val_img_root: str,
    work_root: str,
    d2_cfg_path: str,
    d2_opts: list,
    weights: str,
    namespace: str,
    num_workers: int,
    gpus_per_worker: int,
    timeout_seconds: int,
    trainjob_runtime: str,
    runtime_image: str,
    node_selector: dict,
    tolerations: list,
    pod_resources: dict,
    s3_secret_name: str,
    s3_secret_keys: list,
    s3_config_map_name: str,
    runtime_available: bool,
    metrics: Output[Metrics],
    results_json: OutputPath(str),
) -> str:
    """Train, then predict on val (the ``results_json`` output: the results' URI, '' without val GT); log the
    final loss and iterations as Metrics; return the checkpoint's URI ('' when training was skipped). ``launcher``:
    pytorchjob, trainjob (referencing the torch runtime ``trainjob_runtime``) or local. The job's pods are placed by
    one ``Placement``: the runtime image, the namespace, Workers and GPUs, each pod's CPU and memory
    (``pod_resources``), nodes, and the Secret and ConfigMap their S3 settings come from."""
    from wsovvis.k8s.placement import Placement, PodResources, S3Source
    from wsovvis.train.step import train_step

    return train_step(
        run_id=run_id,
        launcher=launcher,
        train_json=train_json,
        train_img_root=train_img_root,
        val_json=val_json,
        val_img_root=val_img_root,
        work_root=work_root,
        d2_cfg_path=d2_cfg_path,
        d2_opts=d2_opts,
        weights=weights,
        placement=Placement(
            image=runtime_image,
            namespace=namespace,
            num_workers=num_workers,
            gpus_per_worker=gpus_per_worker,
            resources=PodResources(**pod_resources),
            node_selector=node_selector,
            tolerations=tolerations,
            s3=S3Source(
                secret_name=s3_secret_name, secret_keys=s3_secret_keys, config_map_name=s3_config_map_name
            ),
        ),
        timeout_seconds=timeout_seconds,
        trainjob_runtime=trainjob_runtime,
        runtime_available=runtime_available,
        log_metric=metrics.log_metric,
        results_json_path=results_json,
    )
