"""The training stage: SeqFormer (or another :class:`wsovvis.train.trainers.Trainer`) under a Sacred/DDP harness.

``wsovvis train with CONFIG.yaml`` runs :func:`wsovvis.train.harness.train`; see docs/dev/training.md.
"""
