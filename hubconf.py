"""torch.hub entry points: ``torch.hub.load(repo_or_dir, "squeezenet1_1", pretrained=True)``.

From a clone: ``torch.hub.load("path/to/squeezenet", "squeezenet1_1", source="local",
pretrained=True)`` loads the bundled ImageNet weights (no network). ``weights=NAME`` picks a
set from ``squeezenet list --pretrained``; ``num_classes=N`` gives a new head.
"""
import os
import sys

dependencies = ["torch", "torchvision", "numpy", "safetensors", "PIL", "tqdm"]

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:   # a clone that is not installed: its own package
    sys.path.insert(0, _SRC)

from squeezenet.interop.pretrained import create_model as _create  # noqa: E402


def _entry(name):
    def entry(pretrained=False, weights=None, num_classes=None, progress=True, **kwargs):
        return _create(name, pretrained=pretrained, weights=weights, num_classes=num_classes,
                       progress=progress, **kwargs)
    entry.__name__ = name
    entry.__doc__ = f"{name}: see ``squeezenet.create_model`` (pretrained=True: the default weights)."
    return entry


squeezenet1_0 = _entry("squeezenet1_0")
squeezenet1_0_caffe = _entry("squeezenet1_0_caffe")
squeezenet1_1 = _entry("squeezenet1_1")
squeezenet_small = _entry("squeezenet_small")
