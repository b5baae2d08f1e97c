"""plan-shards: balance the videos of a split over N mask-generation shards."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from wsovvis.images import TOOLS_IMAGE


@dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
def plan_shards(frames_root: str, num_shards: int, videos_list: str, manifest: Output[Artifact]) -> list:
    """Write the shard manifest; return the shard indices (never the video lists: parameters are capped)."""
    from wsovvis.shards import plan_shards_step

    return plan_shards_step(
        frames_root=frames_root, num_shards=num_shards, videos_list=videos_list, manifest_path=manifest.path
    )
