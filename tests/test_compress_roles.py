"""Compression rooms: the data roles decided in one place, and stages run on a copy of the
artefact (the size search's driver) leaving the run's own state untouched."""
from __future__ import annotations

import json

import torch
from torch.utils.data import TensorDataset

from squeezenet.compress.pipeline import (STAGES, Artefact, CompressConfig, CompressState, Stage,
                                          compress_model, run_on_copy)
from squeezenet.compress.roles import DataRoles, format_roles
from squeezenet.data import make_loader, spread_indices
from squeezenet.models import SqueezeNet, SqueezeNetConfig


def _ds(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g))


def test_unlabeled_images_held_out_to_choose_never_calibrate_or_train():
    val, unl = make_loader(_ds(30), 10), _ds(200, 1)
    r = DataRoles.build(val, unlabeled=unl, choose_images=25, calibration_images=64)
    hold = spread_indices(200, 25)
    assert list(r.choose_set.indices) == hold
    fit = set(r.retrain.indices)
    assert fit == set(range(200)) - set(hold) and set(r.calibrate.indices) == fit == set(r.distill.indices)
    assert sum(len(b) for b in r.choose_batches()) == 25
    assert r.info["choose"] == {"source": "--unlabeled", "images": 25, "held_out_of": "--unlabeled",
                                "measure": "agreement with the uncompressed model's top-1", "split": "held out"}
    assert r.info["train"]["images"] == 175 and r.info["train"]["labels"] is False
    assert r.info["calibrate"]["images"] == 64 and r.info["calibrate"]["of"] == 175
    assert r.info["score"]["images"] == 30
    assert r.chosen_on().startswith("25 --unlabeled images held out of calibration and retraining")
    # too few to hold out (a fifth of 40 < 10): the evaluation data chooses, all 40 calibrate
    r = DataRoles.build(val, unlabeled=_ds(40), choose_images=25)
    assert r.choose_set is None and len(r.calibrate) == 40 and r.chosen_on() == "the evaluation data"


def test_labeled_hold_out_every_other_image_and_given_loader():
    train, val = _ds(100), _ds(250, 1)
    names = {"data": "x/test", "train": "x/train"}
    plain_calls = []

    def plain():
        plain_calls.append(1)
        return train
    r = DataRoles.build(make_loader(val, 50), train, choose_images=30, hold_out_labeled=True,
                        train_plain=plain, names=names)
    assert r.choice == "train" and plain_calls == [1]
    assert list(r.choose_loader.dataset.indices) == spread_indices(100, 20)     # at most a fifth
    assert len(r.train) == len(r.retrain) == 80 and not set(r.train.indices) & set(spread_indices(100, 20))
    assert r.chosen_on() == "20 images held out of x/train (not calibrated or retrained on)"
    assert r.info["choose"]["held_out_of"] == "x/train" and r.info["score"]["source"] == "x/test"
    # the train split is the evaluation set: every other evaluation image (said to be optimistic)
    r = DataRoles.build(make_loader(val, 50), train, hold_out_labeled=True, separate_train=False, names=names)
    assert r.choice == "every other" and len(r.choose_loader.dataset) == 125 and r.train is train
    assert "optimistic" in r.chosen_on() and r.info["choose"]["split"] == "every other image"
    # the library default: no hold-out of labeled images; a given loader chooses
    assert DataRoles.build(make_loader(val, 50), train).chosen_on() == "the evaluation data"
    given = make_loader(_ds(12), 4)
    r = DataRoles.build(make_loader(val, 50), train, choose_loader=given, hold_out_labeled=True)
    assert r.choose_loader is given and r.chosen_on() == "the score data" and r.train is train
    text = format_roles(r.info)
    assert [line.split(":")[0] for line in text.splitlines()] == ["train", "calibrate", "choose", "score"]
    assert "12 images of the score data" in text


def test_stages_on_a_copy_leave_the_artefact_and_report_alone():
    torch.manual_seed(0)
    model = SqueezeNet(SqueezeNetConfig(stem="small", fires=((4, 8, 8),), pool_after=(), num_classes=3)).eval()
    roles = DataRoles.build(make_loader(_ds(8), 8))
    s = CompressState.start(model, roles, CompressConfig(bits=4, finetune_epochs=0), "unused.sqz",
                            log=lambda *a: None)
    before = {k: v.clone() for k, v in s.art.model.state_dict().items()}

    def scribble(sub):
        with torch.no_grad():
            for p in sub.art.model.parameters():
                p.zero_()
        sub.art.bits = {k: 2 for k in sub.art.bits}
        sub.add_row("trial", "x", 2, 100, None)
        assert sub.inputs is s.inputs and sub.measured is s.measured and not sub.evaluate_rows
    sub = run_on_copy(s, [Stage("scribble", scribble, "t")], s.art.copy(), evaluate_rows=False)
    assert all(torch.equal(before[k], v) for k, v in s.art.model.state_dict().items())
    assert set(s.art.bits.values()) == {4} and s.report.rows == []
    assert [r["stage"] for r in sub.report.rows] == ["trial"] and set(sub.art.bits.values()) == {2}
    assert isinstance(sub.art, Artefact) and sub.art is not s.art
    assert {st.name for st in STAGES} >= {"size budget", "round", "distill"}


def test_report_carries_the_roles_as_data(tmp_path, one_thread):
    torch.manual_seed(0)
    model = SqueezeNet(SqueezeNetConfig(stem="small", fires=((4, 8, 8),), pool_after=(), num_classes=3)).eval()
    cfg = CompressConfig(prune="uniform:0.5", bits=4, finetune_epochs=0, calibration_images=0)
    rep = compress_model(model, None, make_loader(_ds(16), 8), cfg, tmp_path / "m.sqz",
                         unlabeled=_ds(60, 2), log=lambda *a: None)
    roles = json.loads(json.dumps(rep["data_roles"]))
    assert list(roles) == ["train", "choose", "score"]         # calibration off: no calibrate role
    assert roles["choose"]["images"] == 12 and roles["choose"]["held_out_of"] == "--unlabeled"
    assert roles["train"]["images"] == 48 and rep["scored_on"] == "the evaluation data"
    assert rep["chosen_on"].startswith("12 --unlabeled images held out")
