"""The one-shot GPU check (``scripts/gpu-check.sh``): build the deformable-attention op for the GPU's arch, compare
it with the PyTorch op, run VideoCutLER and a tiny SeqFormer training on the GPU, and report the figures.

The GPU machine it is written for reaches no package registry and runs its own ``python3`` (torch with CUDA, nvcc,
torchvision, timm, opencv), so ``bundle`` gathers the trimmed upstream sources and the wheels of the missing
packages here, and ``run`` installs from that bundle there. ``docs/dev/gpu-check.md`` describes the whole procedure.
Nothing here imports more than the standard library at module level: the check starts before its packages are in
place.
"""
