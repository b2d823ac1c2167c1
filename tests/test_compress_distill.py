"""Quantization-aware distillation: sizes kept, zeros kept, the student moves toward the teacher."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from torch import nn

from squeezenet.compress import distill as D
from squeezenet.compress import mixed as M
from squeezenet.compress import quantize as Q
from squeezenet.errors import ConfigError


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


def _pair(bits=2, keep=0.6):
    torch.manual_seed(0)
    t = _net()
    with torch.no_grad():
        t[-1].weight.mul_(20)        # confident outputs, so the KL between models is not ~0
    s = _net()
    s.load_state_dict(t.state_dict())
    layers = {}
    for k, _ in t.named_parameters():
        if k.endswith("weight"):
            w = t.get_parameter(k).detach().numpy()
            layers[k] = M.quantize_option(k, w, np.ones(w.size), bits, keep, prune_by="magnitude",
                                          weighted=False, shape=w.shape)
    M.apply_layers(s, layers)
    return t, s, layers


def _gap(s, t, xs):
    with torch.no_grad():
        return float(sum(D.distill_loss(s(x), t(x)) for x in xs))


def test_distill_loss_values():
    z = torch.tensor([[1.0, 2.0, 3.0]])
    assert float(D.distill_loss(z, z + 5)) == pytest.approx(0.0, abs=1e-6)   # softmax is shift-free
    assert float(D.distill_loss(z, z + 1, "mse")) == pytest.approx(1.5)
    with pytest.raises(ConfigError):
        D.distill_loss(z, z, "ce")


@pytest.mark.parametrize("mode", ["centroids", "ste"])
def test_distillation_moves_toward_the_teacher_and_keeps_zeros(mode, one_thread):
    t, s, layers = _pair()
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(16, 3, 8, 8, generator=g) for _ in range(4)]
    before = _gap(s, t, xs)
    new, hist = D.distill_quantized(s, t, layers, xs, steps=60, lr=3e-3, mode=mode)
    assert len(hist) == 60
    assert _gap(s, t, xs) < 0.7 * before
    for k, q in new.items():
        w = s.get_parameter(k).detach().numpy()
        assert np.array_equal(w, q.weight())                       # the model holds the layers
        assert np.array_equal(q.codes == 0, layers[k].codes == 0)  # zeros stay zero
        if mode == "centroids":
            assert np.array_equal(q.codes, layers[k].codes)        # same codes: same file size
    assert all(p.requires_grad for p in s.parameters())           # plain model again
    assert not any(hasattr(s.get_submodule(k.rsplit(".", 1)[0]), "centroids") for k in layers)


def test_frozen_bias_stays_and_precomputed_teacher_outputs_work(one_thread):
    t, s, layers = _pair()
    xs = [torch.randn(8, 3, 8, 8) for _ in range(2)]
    with torch.no_grad():
        pairs = [(x, t(x)) for x in xs]
    last = [k for k in layers][-1][:-len("weight")] + "bias"
    b0 = s.get_parameter(last).detach().clone()
    first = [k for k in layers][0][:-len("weight")] + "bias"
    f0 = s.get_parameter(first).detach().clone()
    D.distill_quantized(s, None, layers, pairs, steps=5, lr=1e-2, frozen_bias=[last])
    assert torch.equal(s.get_parameter(last).detach(), b0)
    assert not torch.equal(s.get_parameter(first).detach(), f0)


def test_bad_mode_and_exhausted_iterator():
    t, s, layers = _pair()
    with pytest.raises(ConfigError):
        D.distill_quantized(s, t, layers, [torch.randn(2, 3, 8, 8)], steps=1, mode="all")
    gen = (torch.randn(2, 3, 8, 8) for _ in range(2))
    with pytest.raises(ConfigError):
        D.distill_quantized(s, t, layers, gen, steps=5)


def test_ste_final_codes_fit_a_byte_budget(one_thread):
    t, s, layers = _pair(bits=4, keep=0.9)
    xs = [torch.randn(8, 3, 8, 8) for _ in range(3)]
    size = lambda L: sum(M.layer_bytes(q.codes, q.codebook.size) for q in L.values())
    start = size(layers)
    new, _ = D.distill_quantized(s, t, layers, xs, steps=10, lr=1e-2, mode="ste", max_bytes=start - 60)
    assert size(new) <= start - 60
    assert all(np.array_equal(new[k].codes == 0, layers[k].codes == 0) for k in layers)
