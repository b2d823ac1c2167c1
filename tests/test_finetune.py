"""Fine-tuning: reset_classifier, the head decision (new vs kept rows), --freeze, --head-lr-mult,
and the frozen-backbone path (features computed once, conv10 trained on them)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import squeezenet
from squeezenet.errors import ConfigError, SqueezeNetError
from squeezenet.train import TrainConfig, Trainer
from squeezenet.train.finetune import (apply_head, extract_features, fit_head, freeze, layer_names,
                                       mapping_from_labels, param_groups, plan_head, transfer_head)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = squeezenet.MetaParams(base_e=16, incr_e=16, sr=0.25)
VARIANTS = [dict(), dict(batch_norm=True), dict(bypass="simple"), dict(bypass="complex", batch_norm=True)]


def tiny_model(classes=6, **kw):
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=TINY, num_classes=classes, **kw)
    with torch.no_grad():   # an "old head" whose outputs are alive and distinct per row
        m.final_conv.weight.normal_(0, 0.3)
        m.final_conv.bias.uniform_(0.5, 1.5)
    m.classes = [f"n{i:08d}" for i in range(classes)]
    m.preprocess = "small"
    return m


def tiny_data(n=48, classes=3, seed=0):
    """Images whose class is a colour shift: learnable from a frozen random backbone."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.3
    x[torch.arange(n), y] += 2.0          # class k brightens channel k
    return TensorDataset(x, y)


def settle_bn(m):
    """Give BatchNorm layers non-trivial running statistics, then eval mode."""
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 3, 32, 32))
    return m.eval()


# ------------------------------------------------------------------------ reset_classifier

@pytest.mark.parametrize("kw", VARIANTS, ids=["plain", "bn", "simple", "complex-bn"])
def test_reset_classifier_keep_rows_scores_as_before(kw):
    m = settle_bn(tiny_model(**kw))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = m(x)
    features = copy.deepcopy(m.features.state_dict())
    rows = [5, 0, 3]
    m.reset_classifier(3, keep_rows=rows)
    assert m.config.num_classes == 3 and m.num_classes == 3
    assert m.classes == ["n00000005", "n00000000", "n00000003"]
    with torch.no_grad():
        after = m(x)
    assert after.shape == (4, 3)
    assert torch.allclose(after, before[:, rows], atol=1e-6)
    assert all(torch.equal(v, m.features.state_dict()[k]) for k, v in features.items())


@pytest.mark.parametrize("kw", VARIANTS, ids=["plain", "bn", "simple", "complex-bn"])
def test_reset_classifier_new_head(kw, tmp_path):
    m = tiny_model(**kw)
    old = m.final_conv
    m.reset_classifier(2)
    assert m.final_conv is not old and m.final_conv.weight.shape[:2] == (2, old.in_channels)
    assert float(m.final_conv.weight.detach().std()) == pytest.approx(0.01, rel=0.3)
    assert float(m.final_conv.bias.detach().abs().max()) == 0.0
    assert m.config.num_classes == 2 and m.classes is None
    m.classes = ["cat", "dog"]
    back = squeezenet.load(squeezenet.save(m, tmp_path / "m.safetensors"))
    assert back.config.num_classes == 2 and back.classes == ["cat", "dog"]
    assert torch.equal(back.final_conv.weight, m.final_conv.weight)


def test_reset_classifier_keeps_conv10_padding_and_checks_rows():
    m = squeezenet.create_model("squeezenet1_0_caffe", meta=TINY, num_classes=5)
    m.reset_classifier(2, keep_rows=[1, 4])
    assert m.final_conv.padding == (1, 1) and m.config.conv10_padding == 1
    with pytest.raises(ConfigError, match="row 9"):
        m.reset_classifier(2, keep_rows=[0, 9])
    with pytest.raises(ConfigError, match="3 rows for 2 classes"):
        m.reset_classifier(2, keep_rows=[0, 1, 0])
    with pytest.raises(ConfigError, match="num_classes"):
        m.reset_classifier(0)


# ---------------------------------------------------------------------------- head plans

def test_plan_head_subset_same_new_and_keep_errors():
    model = ["n1", "n2", "n3", "n4"]
    p = plan_head(model, ["n4", "n2"])
    assert (p.kind, p.keep_rows, p.classes) == ("keep", (3, 1), ("n4", "n2"))
    assert "head kept" in p.message and "\n" not in p.message
    assert plan_head(model, model).kind == "same"
    p = plan_head(model, ["cat", "n2", "dog"])
    assert p.kind == "new" and p.keep_rows is None and "'cat' (and 1 more)" in p.message
    assert plan_head(model, ["n4", "n2"], mode="new").kind == "new"
    with pytest.raises(ConfigError, match=r"--head keep: the model has no class 'cat' \(and 1 more\)"):
        plan_head(model, ["cat", "n2", "dog"], mode="keep")
    with pytest.raises(ConfigError, match="1 class \\('cat'\\)"):
        plan_head(model, ["cat"])
    with pytest.raises(ConfigError, match="no class list"):
        plan_head(None, ["a", "b"], mode="keep")
    assert plan_head(None, ["a", "b"]).kind == "new"
    with pytest.raises(ConfigError, match="head mode"):
        plan_head(model, ["n1", "n2"], mode="subset")


def test_plan_head_through_a_labels_mapping():
    labels = ["n01440764 tench, Tinca tinca", "n02102040 English springer, English springer spaniel",
              "n02012849 crane", "n03126707 crane"]
    mapping = mapping_from_labels(labels)
    model = ["n01440764", "n02012849", "n02102040", "n03126707"]
    p = plan_head(model, ["english_springer", "Tench"], mapping=mapping)
    assert (p.kind, p.keep_rows) == ("keep", (2, 0))
    p = plan_head(model, ["crane", "tench"], mapping=mapping)        # ambiguous: names no class
    assert p.kind == "new" and "'crane'" in p.message
    with pytest.raises(ConfigError, match="two of the data's classes"):
        plan_head(model, ["tench", "tinca tinca"], mode="keep", mapping=mapping)


def test_transfer_head_epoch0_scores_like_the_old_model():
    m = tiny_model(classes=6).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        old = m(x)
    plan = transfer_head(m, ["n00000004", "n00000001"])
    assert plan.kind == "keep" and m.classes == ["n00000004", "n00000001"]
    with torch.no_grad():
        assert torch.allclose(m(x), old[:, [4, 1]], atol=1e-6)
    plan = transfer_head(m, ["roses", "tulips", "daisies"])
    assert plan.kind == "new" and m.classes == ["roses", "tulips", "daisies"] and m.num_classes == 3


# ----------------------------------------------------------------------- freeze and groups

def test_layer_names_follow_the_paper():
    names = layer_names(squeezenet.create_model("squeezenet1_1"))
    assert names["conv1"] == "features.0" and names["fire2"] == "features.3"
    assert names["fire9"] == "features.12" and names["conv10"] == "classifier.1"
    assert len([n for n in names if n.startswith("fire")]) == 8


def test_freeze_features_keeps_weights_and_bn_statistics():
    m = settle_bn(tiny_model(classes=3, batch_norm=True))
    before = copy.deepcopy(m.state_dict())
    frozen = freeze(m, "features")
    assert frozen == ["features"]
    cfg = TrainConfig(epochs=1, batch_size=8, accum_steps=1, lr=0.05, optimizer="sgd", progress=False,
                      checkpoint_minutes=1e9, head_lr_mult=10.0, dropout=0.0)
    tr = Trainer(m, cfg, tiny_data())
    tr.fit()
    after = m.state_dict()
    for k, v in before.items():
        if k.startswith("features."):
            assert torch.equal(v, after[k]), k          # weights and running stats unchanged
    assert not torch.equal(before["classifier.1.weight"], after["classifier.1.weight"])
    bns = [mod for mod in m.features.modules() if isinstance(mod, nn.BatchNorm2d)]
    m.train()
    assert bns and not any(b.training for b in bns) and m.classifier.training


def test_freeze_names_and_errors():
    m = tiny_model(classes=3, batch_norm=True)
    assert freeze(m, "conv1, fire2") == ["features.0", "features.1", "features.4"]   # conv1 + its BN
    assert not m.features[0].weight.requires_grad and not m.features[1].weight.requires_grad
    assert not m.features[4].squeeze.weight.requires_grad and m.features[5].squeeze.weight.requires_grad
    with pytest.raises(ConfigError, match="--freeze 'fire12' matches no layer"):
        freeze(tiny_model(), "fire12")
    with pytest.raises(ConfigError, match="did you mean features"):
        freeze(tiny_model(), "featurs")
    with pytest.raises(ConfigError, match="nothing to train"):
        Trainer(tiny_model(), TrainConfig(freeze="features,classifier", progress=False), tiny_data())
    assert freeze(tiny_model(), "none") == [] and freeze(tiny_model(), None) == []


def test_freezes_backbone():
    from squeezenet.train.finetune import freezes_backbone
    m = tiny_model(classes=3, batch_norm=True)
    names = ",".join(["conv1"] + [f"fire{i}" for i in range(2, 10)])
    assert freezes_backbone(m, "features") and freezes_backbone(m, names)
    assert not freezes_backbone(m, "conv1,fire2") and not freezes_backbone(m, "features,conv10")
    assert not freezes_backbone(m, "none")


def test_head_lr_mult_groups_and_trainer_lr():
    m = tiny_model(classes=3)
    assert len(param_groups(m, 1.0)) == 1
    groups = param_groups(m, 10.0)
    assert [g["lr_mult"] for g in groups] == [1.0, 10.0]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in m.classifier.parameters()}
    seen = []

    class Spy:
        def on_step_end(self, trainer):
            seen.append([g["lr"] for g in trainer.optimizer.param_groups])
    cfg = TrainConfig(epochs=1, batch_size=16, accum_steps=1, lr=0.01, schedule="constant", progress=False,
                      checkpoint_minutes=1e9, head_lr_mult=10.0, optimizer="adamw")
    Trainer(m, cfg, tiny_data(), callbacks=[Spy()]).fit()
    assert seen and all(lrs == pytest.approx([0.01, 0.1]) for lrs in seen)
    with pytest.raises(ConfigError, match="head_lr_mult"):
        TrainConfig(head_lr_mult=0)


# ----------------------------------------------------------------------- frozen backbone

def test_fit_head_computes_features_once_and_puts_the_head_back():
    m = tiny_model(classes=8)
    train, val = tiny_data(40, seed=1), tiny_data(24, seed=2)
    transfer_head(m, ["r", "g", "b"])
    calls = []
    m.features.register_forward_hook(lambda mod, i, o: calls.append(i[0].shape[0]))
    body = copy.deepcopy(m.features.state_dict())
    head = m.final_conv.weight.detach().clone()
    cfg = TrainConfig(epochs=3, batch_size=16, accum_steps=1, optimizer="adamw", lr=1e-2, progress=False,
                      dropout=0.0, eval_batch_size=16)
    hist = fit_head(m, train, cfg, val_data=val)
    assert sum(calls) == len(train) + len(val)             # one pass each, not one per epoch
    assert len(hist) == 3 and all("val_top1" in h and "features_s" in h for h in hist)
    assert all(torch.equal(v, m.features.state_dict()[k]) for k, v in body.items())
    assert not torch.equal(head, m.final_conv.weight)
    assert all(p.requires_grad for p in m.parameters()) and not m.training
    with torch.no_grad():   # the model, head put back, scores what the cached features scored
        x, y = val.tensors
        assert float((m(x).argmax(1) == y).float().mean()) == pytest.approx(hist[-1]["val_top1"])


def test_new_head_imprinted_from_features_learns():
    """A new conv10 imprinted from class means starts alive (SqueezeNet's ReLU follows conv10)
    and learns classes that the features separate."""
    g = torch.Generator().manual_seed(0)

    def feats(n):
        y = torch.arange(n) % 5
        f = torch.rand(n, 64, 3, 3, generator=g)
        f[torch.arange(n), y] += 1.0                       # class k lights up channel k
        return f.half(), y
    m = tiny_model(classes=10)
    assert m.final_conv.in_channels == 64
    old_norm = float(m.final_conv.weight.detach().flatten(1).norm(dim=1).mean())
    train = feats(500)
    plan = transfer_head(m, list("abcde"), features=train)
    assert plan.kind == "new" and "class means of the features of 500 training photos" in plan.message
    w = m.final_conv.weight.detach().flatten(1)
    assert torch.allclose(w.norm(dim=1), torch.full((5,), old_norm), rtol=1e-4)
    assert int(w.argmax(1).eq(torch.arange(5)).sum()) == 5       # row k points at channel k
    with torch.no_grad():
        assert bool((m.final_conv(train[0][:50].float()) > 0).any(-1).any(-1).all())   # no dead class map
    cfg = TrainConfig(epochs=10, batch_size=50, accum_steps=1, optimizer="adamw", lr=1e-2, schedule="cosine",
                      progress=False, dropout=0.0, label_smoothing=0.1)
    hist = fit_head(m, None, cfg, features=train, val_features=feats(200))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] and hist[-1]["val_top1"] >= 0.95


def test_class_sample_and_sample_features():
    from squeezenet.train.finetune import class_sample, sample_features
    idx = class_sample([0] * 10 + [1] * 3, 4, seed=1)
    assert len(idx) == 7 and sum(i < 10 for i in idx) == 4 and {10, 11, 12} <= set(idx)
    ds = tiny_data(30)
    ds.targets = ds.tensors[1].tolist()
    f, y = sample_features(tiny_model(3), ds, per_class=2)
    assert f.shape[0] == 6 and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]


def test_extract_features_views_and_dtype():
    m = tiny_model(classes=3)
    f, y = extract_features(m, tiny_data(10), batch_size=4, views=2)
    assert f.dtype == torch.float16 and f.shape[0] == 20 and torch.equal(y[:10], y[10:])
    with pytest.raises(SqueezeNetError):
        extract_features(m, TensorDataset(torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long)))


def test_head_trainer_checkpoints_and_resumes_mid_epoch_exactly(tmp_path):
    """The frozen-head fit is the Trainer's loop: stopped mid-epoch it saves, and a resume
    (same features, its ``batches`` source skipping what was consumed) ends where an
    uninterrupted run ends, bit for bit."""
    from squeezenet.train.finetune import head_trainer
    cfg = TrainConfig(epochs=3, batch_size=8, accum_steps=1, optimizer="adamw", lr=1e-2, progress=False,
                      dropout=0.0, schedule="cosine", seed=3)
    m = tiny_model(classes=3)
    feats = extract_features(m, tiny_data(40), 16)
    whole = copy.deepcopy(m)
    head_trainer(whole, cfg, features=feats).fit()

    class StopAt:
        def on_step_end(self, trainer):
            if trainer.step == 7:        # 5 steps an epoch: mid-way through the second
                trainer._stop_requested = True
    t = head_trainer(copy.deepcopy(m), cfg, features=feats, out_dir=tmp_path / "run")
    t.callbacks.append(StopAt())
    t.fit()
    assert t.interrupted and (tmp_path / "run" / "train_state.safetensors").is_file()
    r = head_trainer(copy.deepcopy(m), cfg, features=feats, out_dir=tmp_path / "run").resume()
    assert r.step == 7
    hist = r.fit()
    assert [h["epoch"] for h in hist] == [1, 2, 3] and all("features_s" in h for h in hist)
    for k, v in whole.state_dict().items():
        assert torch.equal(r.model.state_dict()[k], v), k
    assert (tmp_path / "run" / "last.safetensors").is_file()
