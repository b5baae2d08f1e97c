"""wsovvis: weakly-supervised open-vocabulary video instance segmentation on Kubeflow Pipelines."""

__version__ = "0.1.0"
