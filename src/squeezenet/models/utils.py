"""Small model utilities shared by compression, folding, export and the runtime."""
from __future__ import annotations

import copy

from torch import nn


def prunable(model: nn.Module) -> dict[str, nn.Module]:
    """state_dict key of each conv / linear weight -> its module, in forward order.

    >>> import squeezenet
    >>> keys = list(prunable(squeezenet.create_model("squeezenet1_1")))
    >>> len(keys), keys[0], keys[-1]
    (26, 'features.0.weight', 'classifier.1.weight')
    """
    return {f"{name}.weight": m for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}


def dense_eval_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with any ``torch.nn.utils.parametrize`` (pruning masks,
    weight sharing) baked into plain dense weights, so exporters see ordinary convolutions."""
    from torch.nn.utils import parametrize
    m = copy.deepcopy(model).eval()
    for mod in list(m.modules()):
        if parametrize.is_parametrized(mod):
            for name in list(mod.parametrizations.keys()):
                parametrize.remove_parametrizations(mod, name, leave_parametrized=True)
    return m
