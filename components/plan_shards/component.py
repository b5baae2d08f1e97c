"""plan-shards: balance the videos of a split over N mask-generation shards."""

from kfp import dsl
from kfp.dsl import Artifact, Output, OutputPath

from wsovvis.images import TOOLS_IMAGE


@dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
def plan_shards(
    frames_root: str,
    num_shards: int,
    videos_list: str,
    work_root: str,
    manifest: Output[Artifact],
    manifest_uri: OutputPath(str),
) -> list:
    """Write the shard manifest (also to its content-derived URI, the ``manifest_uri`` output); return one item
    per shard: its index and that URI."""
    from wsovvis.shards import plan_shards_step

    return plan_shards_step(
        frames_root=frames_root,
        num_shards=num_shards,
        videos_list=videos_list,
        work_root=work_root,
        manifest_path=manifest.path,
        manifest_uri_path=manifest_uri,
    )
