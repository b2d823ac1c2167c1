"""squeezenet.evaluate: exact top-1/top-5 counting."""
from __future__ import annotations

import pytest
import torch

import squeezenet
from squeezenet.evaluate import evaluate


def test_topk_exact():
    # 5 samples, 6 classes; the true class ranks 1st, 2nd, 5th, 6th, 1st.
    ranks = [0, 1, 4, 5, 0]
    targets = torch.tensor([0, 1, 2, 3, 4])
    logits = torch.zeros(5, 6)
    for i, (t, r) in enumerate(zip(targets.tolist(), ranks)):
        order = [c for c in range(6) if c != t]
        order.insert(r, t)
        for pos, c in enumerate(order):
            logits[i, c] = 10.0 - pos
    loader = [(torch.zeros(2, 1), targets[:2]), (torch.zeros(3, 1), targets[2:])]
    it = iter([logits[:2], logits[2:]])
    r = evaluate(None, loader, forward=lambda x: next(it))
    assert r["count"] == 5 and r["top1"] == pytest.approx(2 / 5) and r["top5"] == pytest.approx(4 / 5)
    assert r["images_per_s"] > 0 and r["seconds"] >= 0


def test_model_eval_mode_and_digits():
    from squeezenet.data import build_dataset, make_loader
    m = squeezenet.create_model("squeezenet_small").train()
    r = evaluate(m, make_loader(build_dataset("digits", "test"), 120))
    assert not m.training and r["count"] == 360 and 0 <= r["top1"] <= r["top5"] <= 1


def test_class_index_beyond_outputs():
    loader = [(torch.zeros(2, 1), torch.tensor([0, 7]))]
    with pytest.raises(squeezenet.SqueezeNetError, match="--classes"):
        evaluate(None, loader, forward=lambda x: torch.zeros(2, 3))
