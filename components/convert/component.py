"""convert: fan-in of the mask shards into one YTVIS tube JSON."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Output

from wsovvis.images import TOOLS_IMAGE


@dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
def convert(
    mask_roots: list,
    img_root: str,
    work_root: str,
    split_name: str,
    skip_list: str,
    min_masks: int,
    min_coverage: float,
    link_iou: float,
    tubes: Output[Dataset],
    skip_report: Output[Artifact],
) -> str:
    """Convert the masks; return the tube JSON's URI on storage (``link_iou`` 0 = linker off)."""
    from wsovvis.convert.step import convert_step

    return convert_step(
        mask_roots=mask_roots,
        img_root=img_root,
        work_root=work_root,
        split_name=split_name,
        skip_list=skip_list,
        min_masks=min_masks,
        min_coverage=min_coverage,
        link_iou=link_iou,
        tubes_path=tubes.path,
        skip_report_path=skip_report.path,
    )
