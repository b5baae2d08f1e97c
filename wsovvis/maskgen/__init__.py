"""mask-gen: pseudo masks for every video of one shard, one tar per video, resumable per video.

Backends: ``videocutler`` (CutLER's VideoCutLER predictor in-process, GPU) and ``motion`` (a classical
static-camera baseline on CPU). See ``wsovvis.maskgen.run`` for the output layout and the resume rules.
"""

from wsovvis.maskgen.backend import Backend, VideoPrediction
from wsovvis.maskgen.run import MaskGenConfig, ShardFailedError, ShardReport, mask_gen

__all__ = ["Backend", "MaskGenConfig", "ShardFailedError", "ShardReport", "VideoPrediction", "mask_gen"]
