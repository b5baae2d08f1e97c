"""make-agnostic: LV-VIS GT to one category for class-agnostic evaluation."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from wsovvis.images import TOOLS_IMAGE


@dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
def make_agnostic(gt_json: str, work_root: str, agnostic_gt: Output[Dataset]) -> str:
    """Write the class-agnostic GT; return its URI on storage."""
    from wsovvis.agnostic import make_agnostic_step

    return make_agnostic_step(gt_json=gt_json, work_root=work_root, agnostic_path=agnostic_gt.path)
