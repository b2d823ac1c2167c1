"""The mixed compression path as pipeline stages: knapsack allocation at --target-size, GPTQ
rounding, straight-through distillation; choices scored on held-out unlabeled images."""
from __future__ import annotations

import torch

import squeezenet
from squeezenet.compress import prune as P
from squeezenet.compress.pipeline import CompressConfig, compress_model
from squeezenet.data import make_loader
from squeezenet.models import SqueezeNet, SqueezeNetConfig


def tiny(num_classes):
    return SqueezeNet(SqueezeNetConfig(stem="small", fires=((8, 16, 16), (8, 16, 16)), pool_after=(0,),
                                       num_classes=num_classes))


def _trained_like(num_classes=4, seed=0):
    torch.manual_seed(seed)
    m = tiny(num_classes).eval()
    return m


def test_mixed_path_runs_its_stages_fits_and_chooses_on_held_out_unlabeled(tmp_path, one_thread):
    model = _trained_like()
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    unl = torch.utils.data.TensorDataset(torch.randn(120, 3, 16, 16, generator=g), torch.zeros(120, dtype=torch.long))
    val = torch.utils.data.TensorDataset(torch.randn(40, 3, 16, 16, generator=g), torch.randint(0, 4, (40,), generator=g))
    seen = []
    unl_eval = _Recording(unl, seen)
    logs = []
    cfg = CompressConfig(target_size=6_000, calibration_images=32, choose_images=20, distill_steps=4,
                         distill_lr=1e-3)
    report = compress_model(model, None, make_loader(val, 20), cfg, tmp_path / "m.sqz", unlabeled=unl,
                            unlabeled_eval=unl_eval, log=logs.append)
    stages = [r["stage"] for r in report["rows"]]
    assert stages == ["dense", "mixed precision", "rounded", "distilled", "huffman (.sqz)"], stages
    assert report["method"] == "mixed"
    size = (tmp_path / "m.sqz").stat().st_size
    assert size <= 6_000 and report["rows"][-1]["bytes"] == size
    assert report["rows"][-1]["refits"] == 0       # the exact fit needed no refit
    # held-out images: 20 spread over the 120, never among the calibration images
    hold = set(squeezenet.data.spread_indices(120, 20))
    assert "20 --unlabeled images held out" in report["chosen_on"]
    assert set(seen[:20]) == hold                  # read once, first, as the choosing split
    assert seen[20:] and not (set(seen[20:]) & hold)   # calibration never reads them
    # each later step recorded both scores and what it kept
    rounded, distilled = report["rows"][2], report["rows"][3]
    assert rounded["method"] in ("nearest", "GPTQ") and set(rounded["scores"]) == {"nearest", "GPTQ"}
    assert distilled["method"] in ("distilled", "not distilled")
    kept = max(distilled["scores"].values())
    assert distilled["score"] == kept
    # the file holds weight-shared layers with per-layer bit widths under the budget
    loaded = squeezenet.load(tmp_path / "m.sqz")
    for k in P.prunable(loaded):
        assert len(torch.unique(loaded.state_dict()[k])) <= 257
    assert any(not torch.equal(loaded.state_dict()[k], dense[k]) for k in P.prunable(loaded))
    assert any(l.startswith("[") and "round" in l for l in logs)


class _Recording(torch.utils.data.Dataset):
    """A dataset that records which indices were read."""

    def __init__(self, base, seen):
        self.base, self.seen = base, seen

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.seen.append(int(i))
        return self.base[i]


def test_mixed_path_off_or_fixed_bits_keeps_the_uniform_stages(tmp_path, one_thread):
    model = _trained_like()
    data = torch.utils.data.TensorDataset(torch.randn(60, 3, 16, 16), torch.zeros(60, dtype=torch.long))
    for cfg in (CompressConfig(target_size=6_000, bits=5, finetune_epochs=0, calibration_images=16),
                CompressConfig(target_size=6_000, mixed=False, finetune_epochs=0, calibration_images=16)):
        report = compress_model(_trained_like(), None, make_loader(data, 20), cfg, tmp_path / "u.sqz",
                                unlabeled=data, log=lambda *a: None)
        assert [r["stage"] for r in report["rows"]] == ["dense", "pruned", "quantized", "huffman (.sqz)"]
        assert report["method"] == "uniform"
        assert (tmp_path / "u.sqz").stat().st_size <= 6_000


def test_max_drop_finds_a_file_within_the_drop(tmp_path, one_thread):
    """--max-drop on a tiny model: the answer keeps the evaluation top-1 within the drop, is
    the size encoded, and smaller than the largest size tried; bad combinations are refused."""
    from squeezenet.errors import ConfigError
    torch.manual_seed(0)
    model = tiny(4).eval()
    g = torch.Generator().manual_seed(2)
    unl = torch.utils.data.TensorDataset(torch.randn(80, 3, 16, 16, generator=g), torch.zeros(80, dtype=torch.long))
    xs = torch.randn(60, 3, 16, 16, generator=g)
    with torch.no_grad():
        ys = model(xs).argmax(1)           # labels the dense model gets right: top-1 1.0
    val = torch.utils.data.TensorDataset(xs, ys)
    cfg = CompressConfig(max_drop_points=20.0, calibration_images=32, choose_images=16, distill_steps=2)
    report = compress_model(model, None, make_loader(val, 30), cfg, tmp_path / "d.sqz", unlabeled=unl,
                            log=lambda *a: None)
    ss = report["size_search"]
    final = report["rows"][-1]
    assert final["bytes"] == (tmp_path / "d.sqz").stat().st_size <= ss["target"]
    assert final["top1"] >= 0.8 - 1e-9                       # within 20 points of 1.0
    assert ss["target"] < max(t["target"] for t in ss["trials"])
    assert [t["kind"] for t in ss["trials"]][-2:] == ["full", "full"]
    assert "evaluation data" in report["chosen_on"]
    for bad in ({"max_drop_points": 1.0, "target_size": 5000}, {"max_drop_points": 1.0, "bits": 4},
                {"max_drop_points": -1.0}):
        try:
            CompressConfig(**bad)
        except ConfigError as e:
            assert "max_drop_points" in str(e)
        else:
            raise AssertionError(bad)


def test_max_drop_cli_refuses_bad_combinations_before_any_work(tmp_path, cli):
    m = tiny(10)
    m.preprocess, m.classes = "small", [str(i) for i in range(10)]
    squeezenet.save(m, tmp_path / "m.safetensors")
    base = ("compress", tmp_path / "m.safetensors", "--data", "digits", "-o", tmp_path / "o.sqz")
    code, out, err = cli(*base, "--max-drop", "1")
    assert code == 2 and "--max-drop needs --unlabeled" in err
    code, out, err = cli(*base, "--max-drop", "1", "--target-size", "5000", "--unlabeled", tmp_path)
    assert code == 2 and "max_drop_points" in err
    assert not (tmp_path / "o.sqz").exists()


def test_round_sequential_stays_within_the_budget_and_keeps_zeros(one_thread):
    """GPTQ rounding with re-allocation: the summed exact layer bytes end within the budget
    (the last layer steps down if needed), each layer's zeros are its option's, and the
    output error on the calibration images is no worse than nearest rounding's."""
    import copy

    import numpy as np

    from squeezenet.compress import mixed as M
    torch.manual_seed(0)
    dense = tiny(4).eval()
    keys = list(P.prunable(dense))
    batches = [torch.randn(16, 3, 16, 16) for _ in range(2)]
    fisher = M.fisher_diagonal(dense, batches, keys)
    opts = {k: M.layer_options(k, dense.get_parameter(k), fisher[k], bits=(2, 3, 4), keeps=(1.0, 0.6, 0.3),
                               family="kmeans", keep_layers=False) for k in keys}
    budget = int(0.5 * sum(max(o.bytes for o in opts[k]) for k in keys))
    choice = M.allocate(opts, budget)
    near = {k: M.realize(o, dense.get_parameter(k).detach(), fisher[k]) for k, o in choice.items()}
    qm = copy.deepcopy(dense)
    layers, final = M.round_sequential(qm, dense, opts, choice, budget, fisher, batches)
    assert sum(M.layer_bytes(q.codes, q.codebook.size) for q in layers.values()) <= budget
    for k, q in layers.items():
        want = M.realize(final[k], dense.get_parameter(k).detach(), fisher[k])
        # zeros: the option's kept positions (or dead inputs, which compensation zeroes too)
        assert not np.any((q.codes != 0) & (want.codes == 0)), k
        assert torch.equal(qm.get_parameter(k).detach(), torch.from_numpy(q.weight())), k
    nm = copy.deepcopy(dense)
    M.apply_layers(nm, near)
    x = torch.cat(batches)
    with torch.no_grad():
        t = dense(x)
        assert ((qm(x) - t) ** 2).mean() <= ((nm(x) - t) ** 2).mean() * 1.05


def test_mixed_path_with_a_labeled_train_split_only(tmp_path, one_thread):
    """No unlabeled images: calibration and distillation use the train split's images, the
    score data chooses (the report says so)."""
    torch.manual_seed(0)
    train = torch.utils.data.TensorDataset(torch.randn(64, 3, 16, 16), torch.randint(0, 4, (64,)))
    val = torch.utils.data.TensorDataset(torch.randn(40, 3, 16, 16), torch.randint(0, 4, (40,)))
    cfg = CompressConfig(target_size=6_000, calibration_images=16, distill_steps=2, finetune_epochs=0)
    report = compress_model(tiny(4).eval(), train, make_loader(val, 20), cfg, tmp_path / "l.sqz",
                            log=lambda *a: None)
    assert report["chosen_on"] == "the evaluation data"
    assert (tmp_path / "l.sqz").stat().st_size <= 6_000
    assert report["method"] == "mixed"      # it scores better here than the uniform widths
    assert [r["stage"] for r in report["rows"]][-2:] == ["distilled", "huffman (.sqz)"]
