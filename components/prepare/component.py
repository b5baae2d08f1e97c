"""prepare: verify the prebuilt runtime image (patched CutLER/VNext, built ops) before GPU work starts."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from wsovvis.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def prepare(mask_backend: str, train_launcher: str, report: Output[Artifact]) -> bool:
    """Check the runtime; fail when a stage that will run needs a missing piece. Returns whether SeqFormer can train."""
    from wsovvis.prepare.step import prepare_step

    return prepare_step(mask_backend=mask_backend, train_launcher=train_launcher, report_path=report.path)
