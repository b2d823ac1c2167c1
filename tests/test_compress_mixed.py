"""Mixed-precision allocation: exact sizes, the knapsack, the sensitivity estimates."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import squeezenet
from squeezenet.compress import mixed as M
from squeezenet.compress import prune as P
from squeezenet.compress import quantize as Q
from squeezenet.compress.sizing import save_quantized
from squeezenet.errors import ConfigError


def test_layer_bytes_equal_the_writers_payload(tmp_path, one_thread):
    """The size estimate the allocation optimises is the real file's payload, byte for byte,
    across dense, sparse (one and two gaps per symbol) and tiny-codebook layers."""
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", num_classes=10).eval()
    keys = list(P.prunable(m))
    g = np.random.default_rng(0)
    for trial, (b, keep) in enumerate([(4, 1.0), (3, 0.5), (6, 0.2), (2, 0.9), (8, 0.05)]):
        layers = {}
        for k in keys:
            w = m.get_parameter(k).detach().numpy()
            imp = g.random(w.size)
            layers[k] = M.quantize_option(k, w, imp, b, keep, "saliency", True, shape=w.shape)
            if trial % 2:
                layers[k] = M.uniform_option(k, w, 0.3 * float(w.std()) * (trial + 1) / 3, keep, shape=w.shape)
        mm = squeezenet.create_model("squeezenet_small", num_classes=10)
        mm.load_state_dict(m.state_dict())
        M.apply_layers(mm, layers)
        info = save_quantized(mm, layers, tmp_path / f"m{trial}.sqz")
        est = sum(M.layer_bytes(q.codes, q.codebook.size) for q in layers.values())
        parts = info["parts"]
        assert est == parts["codebook"] + parts["codes"] + parts["positions"], (b, keep)


def test_layer_bytes_hand_case():
    # codes 0,0,0,0,0,0,1,2 (two centroids): sparse = codes {1, 2} (1 bit each -> 1 B, table
    # 2 B) + gaps {6, 0} (1 bit each -> 1 B, table 8 B) = 12 B; dense order: lengths 1, 2, 2
    # -> 6 + 2 + 2 = 10 bits = 2 B + 2 B table = 4 B, but only tried above half density
    assert M.layer_bytes(np.array([0, 0, 0, 0, 0, 0, 1, 2]), 2) == 12 + 4 * 3
    # all kept: dense order, 8 codes of 1 bit (symbols 1, 2 only: 1 bit each) -> 1 B + 2 B
    assert M.layer_bytes(np.array([1, 2, 1, 2, 1, 2, 1, 2]), 2) == 3 + 4 * 3


def _opt(key, b, d):
    q = Q.QuantLayer(key, (1,), 1, np.zeros(1, np.float32), np.zeros(1, np.int64))
    return M.Option(key, 1, 1.0, b, d, q)


def test_allocate_is_the_exact_knapsack_optimum():
    g = np.random.default_rng(1)
    for trial in range(20):
        opts = {f"l{i}": [_opt(f"l{i}", int(g.integers(10, 100)), float(g.random())) for _ in range(4)]
                for i in range(4)}
        budget = int(g.integers(80, 300))
        feasible = [c for c in itertools.product(*opts.values()) if sum(o.bytes for o in c) <= budget]
        if not feasible:
            with pytest.raises(ConfigError):
                M.allocate(opts, budget, resolution=1)
            continue
        best = min(sum(o.distortion for o in c) for c in feasible)
        pick = M.allocate(opts, budget, resolution=1)
        assert sum(o.bytes for o in pick.values()) <= budget
        assert sum(o.distortion for o in pick.values()) == pytest.approx(best)
        assert list(pick) == list(opts)


def test_allocate_coarse_resolution_never_exceeds_budget():
    g = np.random.default_rng(2)
    opts = {f"l{i}": [_opt(f"l{i}", int(g.integers(1000, 9000)), float(g.random())) for _ in range(6)]
            for i in range(8)}
    for budget in (30_000, 45_000, 60_000):
        pick = M.allocate(opts, budget, resolution=97)
        assert sum(o.bytes for o in pick.values()) <= budget


def test_weighted_kmeans_centroids_are_weighted_means():
    x = np.array([0.0, 1.0, 4.0, 5.0])
    cb, lab = Q.kmeans_1d(x, 2)
    assert cb.tolist() == pytest.approx([0.5, 4.5])
    cb_w, lab_w = Q.kmeans_1d(x, 2, weights=np.array([3.0, 1.0, 1.0, 3.0]))
    assert cb_w.tolist() == pytest.approx([0.25, 4.75]) and lab_w.tolist() == lab.tolist()
    assert Q.kmeans_1d(np.array([0.0, 1.0, 10.0]), 1, weights=np.array([1.0, 1.0, 8.0]))[0][0] == pytest.approx(8.1)
    same = Q.kmeans_1d(x * 1.7, 2, weights=np.ones(4))[0]
    assert np.allclose(same, Q.kmeans_1d(x * 1.7, 2)[0])
    with pytest.raises(ConfigError):
        Q.kmeans_1d(x, 2, weights=-np.ones(6))


def test_quantize_option_prunes_by_saliency_and_keeps_zeros():
    w = np.array([0.0, 1.0, -2.0, 0.5, 3.0, -0.1, 0.2, 0.0])
    imp = np.array([1, 100, 0.001, 1, 1, 1, 1000, 1.0])
    q = M.quantize_option("w", w, imp, bits=1, keep=0.5, prune_by="saliency")
    kept = set(np.flatnonzero(q.codes).tolist())
    # saliency w^2 F: 100, 0.004, 0.25, 9, 0.01, 40 -> the four largest are 1, 4, 6, 3
    assert kept == {1, 3, 4, 6}
    qm = M.quantize_option("w", w, imp, bits=1, keep=0.5, prune_by="magnitude")
    assert set(np.flatnonzero(qm.codes).tolist()) == {1, 2, 3, 4}
    assert np.all(q.weight()[w == 0] == 0)


def test_fisher_diagonal_matches_the_analytic_curvature(one_thread):
    """For z = W x the logit curvature of W[c, j] is E[x_j^2] (every class alike); the KL
    (Fisher) curvature is E[p_c (1 - p_c) x_j^2]."""
    torch.manual_seed(0)
    lin = nn.Linear(6, 4, bias=False)
    with torch.no_grad():
        lin.weight.mul_(3)
    x = torch.randn(4000, 6) * torch.tensor([0.5, 1, 1.5, 2, 1, 0.2])
    batches = list(x.split(20))
    f_lg = M.fisher_diagonal(lin, batches, ["weight"], samples=8, target="logits")["weight"]
    want_lg = (x ** 2).mean(0).expand(4, 6)
    assert torch.allclose(f_lg, want_lg, rtol=0.2)
    f_kl = M.fisher_diagonal(lin, batches, ["weight"], samples=8, target="kl")["weight"]
    p = torch.softmax(lin(x).detach(), 1)
    want_kl = torch.einsum("nc,nj->cj", p * (1 - p), x ** 2) / x.shape[0]
    assert torch.allclose(f_kl, want_kl, rtol=0.25)
    with pytest.raises(ConfigError):
        M.fisher_diagonal(lin, batches, ["weight"], target="labels")


def test_allocation_spends_bits_where_the_curvature_is(one_thread):
    """Two layers of equal size, one 100x more sensitive: under a tight budget the sensitive
    one gets more bits, and the summed estimate beats the best uniform choice."""
    g = np.random.default_rng(3)
    w1, w2 = g.normal(size=4096), g.normal(size=4096)
    o1 = M.layer_options("a", w1, np.full(4096, 100.0), bits=(2, 3, 4, 5, 6), keeps=(1.0,))
    o2 = M.layer_options("b", w2, np.full(4096, 1.0), bits=(2, 3, 4, 5, 6), keeps=(1.0,))
    uni = {b: (next(o for o in o1 if o.bits == b), next(o for o in o2 if o.bits == b)) for b in (2, 3, 4, 5, 6)}
    budget = sum(o.bytes for o in uni[4])
    pick = M.allocate({"a": o1, "b": o2}, budget)
    assert pick["a"].bits > pick["b"].bits
    assert sum(o.distortion for o in pick.values()) < sum(o.distortion for o in uni[4])
    s = M.allocation_summary(pick)
    assert s["bytes"] <= budget and s["kept"] == 1.0


def test_uniform_option_grid_zeros_and_level_cap():
    w = np.array([0.0, 0.26, -0.49, 1.04, 0.01, -0.74])
    q = M.uniform_option("w", w, 0.25)
    assert q.weight().tolist() == pytest.approx([0.0, 0.25, -0.5, 1.0, 0.0, -0.75])
    assert q.codes[0] == 0 and q.codes[4] == 0               # zero level = pruned
    assert q.codebook.tolist() == pytest.approx([-0.75, -0.5, 0.25, 1.0])   # only used levels
    half = M.uniform_option("w", w, 0.25, keep=0.5)
    assert np.count_nonzero(half.codes) == 3 and half.weight()[3] == pytest.approx(1.0)
    assert M.uniform_option("w", np.linspace(-1, 1, 1001), 1e-3, max_levels=256) is None


def test_uniform_family_has_less_estimated_loss_at_equal_bytes(one_thread):
    """Entropy-coded uniform levels beat k-means centroids at the same coded size (Gaussian
    weights, unit curvature): the allocation over both families never does worse than k-means."""
    w = np.random.default_rng(4).normal(size=20000)
    imp = np.ones_like(w)
    km = {"w": M.layer_options("w", w, imp, keeps=(1.0,))}
    un = {"w": M.layer_options("w", w, imp, keeps=(1.0,), family="uniform")}
    both = {"w": km["w"] + un["w"]}
    for budget in (6000, 9000, 12000):
        d_km = M.allocate(km, budget)["w"].distortion
        d_un = M.allocate(un, budget)["w"].distortion
        assert d_un < d_km
        assert M.allocate(both, budget)["w"].distortion <= min(d_km, d_un)
    with pytest.raises(ConfigError):
        M.layer_options("w", w, imp, family="lattice")


def test_options_without_layers_are_rebuilt_identically(one_thread):
    w = np.random.default_rng(5).normal(size=3000).reshape(30, 100)
    imp = np.ones(w.size)
    full = M.layer_options("w", w, imp, bits=(3, 5), keeps=(1.0, 0.5), family="both")
    lean = M.layer_options("w", w, imp, bits=(3, 5), keeps=(1.0, 0.5), family="both", keep_layers=False)
    assert len(full) == len(lean) and all(o.layer is None for o in lean)
    for a, b in zip(full, lean):
        q = M.realize(b, w, imp)
        assert (a.bytes, a.distortion) == (b.bytes, b.distortion)
        assert np.array_equal(q.codes, a.layer.codes) and np.array_equal(q.codebook, a.layer.codebook)
        assert q.shape == (30, 100)


def test_assign_within_budget_fits_exactly_and_costs_least(one_thread):
    g = np.random.default_rng(6)
    vals = {"a": g.normal(size=(40, 50)), "b": g.laplace(size=(3000,))}
    cbs = {k: np.sort(Q.kmeans_1d(v.ravel(), 16)[0]) for k, v in vals.items()}
    keep = {"a": np.abs(vals["a"]) > 0.3, "b": np.ones(3000, bool)}
    imp = {k: g.random(v.size) + 0.5 for k, v in vals.items()}
    loose, mu = M.assign_within_budget(vals, cbs, keep, imp, 10 ** 9)
    assert mu == 0.0
    for k, q in loose.items():                                   # nearest rounding
        w = q.weight().ravel()
        v = vals[k].ravel()
        best = np.abs(v[:, None] - cbs[k][None, :]).min(1)
        kp = keep[k].ravel()
        assert np.allclose(np.abs(w - v)[kp], best[kp], atol=1e-6) and np.all(w[~kp] == 0)
    size = lambda L: sum(M.layer_bytes(q.codes, q.codebook.size) for q in L.values())
    full = size(loose)
    for frac in (0.99, 0.95):
        budget = int(full * frac)
        tight, mu = M.assign_within_budget(vals, cbs, keep, imp, budget)
        assert size(tight) <= budget and mu > 0
        assert all(np.array_equal(q.codes == 0, ~keep[k].ravel()) for k, q in tight.items())
        # the loss it adds is far below what the same saving costs by dropping small weights
        loss = sum(M.distortion(vals[k], q.weight(), imp[k]) for k, q in tight.items())
        base = sum(M.distortion(vals[k], q.weight(), imp[k]) for k, q in loose.items())
        assert loss - base < 0.5 * base
    with pytest.raises(ConfigError):
        M.assign_within_budget(vals, cbs, keep, imp, 100)
