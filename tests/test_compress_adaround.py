"""Learned rounding (AdaRound) to a codebook, paired input statistics and bias correction."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from squeezenet.compress import adaround as A
from squeezenet.compress.compensate import conv_hessian


def _err(Q, W, H):
    D = Q - W
    return float(torch.einsum("rd,de,re->", D, H, D))


def _problem(seed=0, rows=16, d=24, n=400):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, d, generator=g, dtype=torch.float64)
    # correlated inputs: rounding choices interact, so learned rounding has something to win
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.3 + torch.eye(d, dtype=torch.float64)
    X = mix @ torch.randn(d, n, generator=g, dtype=torch.float64)
    return W, X, X @ X.T / n


def test_learned_rounding_beats_nearest_and_only_uses_neighbours(one_thread):
    W, X, H = _problem()
    W[W.abs() < 0.2] = 0                                     # some pruned weights
    cb = torch.linspace(-2.5, 2.5, 7, dtype=torch.float64)
    codes = A.adaround_layer(W, H, cb, iters=200)
    Qa = torch.where(codes > 0, cb[(codes - 1).clamp_min(0)], torch.zeros_like(W))
    Qn = torch.where(W != 0, cb[(W.unsqueeze(-1) - cb).abs().argmin(-1)], torch.zeros_like(W))
    assert _err(Qa, W, H) < 0.9 * _err(Qn, W, H)
    assert torch.all(codes[W == 0] == 0) and torch.all(codes[W != 0] > 0)
    lo, hi, _ = A.bracket(W, cb)
    c = codes - 1
    assert torch.all((c == lo) | (c == hi) | (W == 0))


def test_cross_term_corrects_upstream_error(one_thread):
    """With compressed-network inputs X_q = X + noise, the objective with the cross term
    (target W X) ends nearer to the original outputs than the plain layer-wise one."""
    W, X, _ = _problem(1)
    g = torch.Generator().manual_seed(5)
    Xq = X + 0.3 * torch.randn(X.shape, generator=g, dtype=torch.float64)
    n = X.shape[1]
    Hqq, Hfq = Xq @ Xq.T / n, X @ Xq.T / n
    cb = torch.linspace(-2.5, 2.5, 9, dtype=torch.float64)

    def out_err(codes):
        Q = cb[codes - 1]
        return float(((Q @ Xq - W @ X) ** 2).mean())
    plain = A.adaround_layer(W, Hqq, cb, iters=200)
    cross = A.adaround_layer(W, Hqq, cb, G=W @ Hfq, iters=200)
    assert out_err(cross) < out_err(plain)


def test_paired_statistics_match_direct_computation(one_thread):
    torch.manual_seed(0)
    fp = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1))
    q = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1))
    q.load_state_dict(fp.state_dict())
    with torch.no_grad():
        q[0].weight.add_(0.1)
    xs = [torch.randn(2, 3, 8, 8) for _ in range(3)]
    st = A.paired_statistics(fp, q, "2.weight", xs)
    with torch.no_grad():
        af = torch.cat([fp[1](fp[0](x)) for x in xs])
        aq = torch.cat([q[1](q[0](x)) for x in xs])
    assert torch.allclose(st["Hqq"], conv_hessian(q[2], aq), atol=1e-10)
    cf = torch.nn.functional.unfold(af, 3, padding=1).transpose(0, 1).reshape(36, -1).double()
    cq = torch.nn.functional.unfold(aq, 3, padding=1).transpose(0, 1).reshape(36, -1).double()
    assert torch.allclose(st["Hfq"], cf @ cq.T / cq.shape[1], atol=1e-10)
    assert torch.allclose(st["mu_f"], cf.mean(1), atol=1e-10)
    assert torch.allclose(st["mu_q"], cq.mean(1), atol=1e-10)


def test_bias_correction_cancels_the_mean_output_error():
    W, X, _ = _problem(2)
    Xq = X + 0.2
    Q = torch.round(W * 2) / 2
    db = A.bias_correction(W, Q, X.mean(1), Xq.mean(1))
    before = (W @ X - Q @ Xq).mean(1)
    after = (W @ X - (Q @ Xq + db.unsqueeze(1))).mean(1)
    assert before.abs().max() > 0.1
    assert after.abs().max() < 1e-10


def test_gptq_on_the_asymmetric_target_keeps_zeros_and_corrects_upstream_error(one_thread):
    """When the error coming from earlier layers dominates the layer's own rounding error (a
    fine codebook, noisy inputs), rounding the asymmetric target wins; zeros stay zero."""
    from squeezenet.compress.compensate import compensate_layer
    W, X, _ = _problem(3)
    zero = W.abs() < 0.3
    W = W.masked_fill(zero, 0)
    g = torch.Generator().manual_seed(6)
    Xq = X + 0.3 * torch.randn(X.shape, generator=g, dtype=torch.float64)
    n = X.shape[1]
    Hqq, Hfq = Xq @ Xq.T / n, X @ Xq.T / n
    cb = np.linspace(-2.5, 2.5, 65)
    Wt = A.asymmetric_target(W, Hqq, Hfq, damp=1e-4)
    assert not bool((Wt[zero] == 0).all())                   # the target is dense ...
    Q_sym, c_sym = compensate_layer(W, Hqq, codebook=cb)
    Q_asym, c_asym = compensate_layer(Wt, Hqq, codebook=cb, zero=zero)
    assert np.all(c_asym.reshape(W.shape)[zero.numpy()] == 0)   # ... but pruned weights stay zero
    assert bool((Q_asym[zero] == 0).all())
    err = lambda Q: float(((Q @ Xq - W @ X) ** 2).mean())
    assert err(Q_asym) < err(Q_sym)
