"""``squeezenet train --model FILE`` on the user's own classes (issue 12): a new head or kept
rows, one line saying which, the class list and names in the output, ``predict`` showing the
names, the frozen-backbone path, and every bad input as one line, exit 2, nothing written."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import squeezenet
from squeezenet.train.recipes import RECIPES

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = squeezenet.MetaParams(base_e=16, incr_e=16, sr=0.25)
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
FAST = ["--max-steps", "2", "--batch-size", "8", "--no-progress"]


def model_file(tmp_path, batch_norm=False, classes=6):
    """A 32x32 model with an ImageNet-style class list (ids n00000000..) and alive old rows."""
    torch.manual_seed(0)
    m = squeezenet.create_model("squeezenet_small", meta=TINY, num_classes=classes, batch_norm=batch_norm)
    with torch.no_grad():
        m.final_conv.weight.normal_(0, 0.3)
        m.final_conv.bias.uniform_(0.5, 1.5)
    m.classes = [f"n{i:08d}" for i in range(classes)]
    m.preprocess = "small"
    return squeezenet.save(m, tmp_path / f"pre{'_bn' if batch_norm else ''}.safetensors")


def photos(root, classes, per_class=6, splits=("train", "test")):
    """root/<split>/<class>/*.png: 32x32 images whose class is their colour (plus noise)."""
    g = torch.Generator().manual_seed(0)
    for split in splits:
        for k, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = torch.tensor(COLOURS[k % len(COLOURS)], dtype=torch.float32).view(3, 1, 1)
                img = (base + 40 * torch.randn(3, 32, 32, generator=g)).clamp(0, 255).byte()
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i}.png")
    return root


def conv10(path):
    m = squeezenet.load(path)
    return m, m.final_conv.weight.detach().flatten(1), m.final_conv.bias.detach()


def test_finetune_is_a_recipe_row_and_the_default_for_a_model_file():
    cfg = RECIPES["finetune"].train_config()
    assert cfg.optimizer == "adamw" and cfg.accum_steps == 1 and cfg.head_lr_mult > 1 and cfg.warmup_steps > 0
    assert cfg.train_size == 160 and cfg.label_smoothing > 0


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "bn"])
def test_new_head_for_the_users_classes_and_names_reach_predict(cli, tmp_path, bn):
    data = photos(tmp_path / "photos", ["cat", "dog", "owl"])
    out = tmp_path / "run"
    code, stdout, err = cli("train", "--model", model_file(tmp_path, bn), "--data", data, "--out", out, *FAST)
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert first.startswith("new head:") and "'cat'" in first and "3 classes" in first
    assert "recipe finetune" in stdout
    m, w, _ = conv10(out / "last.safetensors")
    assert m.classes == ["cat", "dog", "owl"] and m.num_classes == 3 and w.shape[0] == 3
    assert m.config.batch_norm is bn
    side = json.loads((out / "last.json").read_text())
    assert side["classes"] == ["cat", "dog", "owl"] and side["train_config"]["optimizer"] == "adamw"
    code, stdout, err = cli("predict", out / "last.safetensors", data / "test" / "dog" / "0.png", "--top", "3")
    assert code == 0, err
    assert all(name in stdout for name in ("cat", "dog", "owl")), stdout
    code, stdout, err = cli("train", "--out", out, "--resume", "--no-progress")   # its own classes come back
    assert code == 0, err


def test_subset_of_the_models_classes_keeps_their_rows(cli, tmp_path):
    pre = model_file(tmp_path)
    _, old_w, old_b = conv10(pre)
    data = photos(tmp_path / "photos", ["n00000005", "n00000002"])
    out = tmp_path / "run"
    # a learning rate too small to move the weights: what is left is what the head started from
    code, stdout, err = cli("train", "--model", pre, "--data", data, "--out", out, *FAST, "--lr", "1e-12")
    assert code == 0, err
    assert stdout.splitlines()[0].startswith("head kept:")
    m, w, b = conv10(out / "last.safetensors")
    assert m.classes == ["n00000002", "n00000005"]     # the data's (sorted folder) order
    torch.testing.assert_close(w, old_w[[2, 5]], atol=1e-6, rtol=0)
    torch.testing.assert_close(b, old_b[[2, 5]], atol=1e-6, rtol=0)


def test_names_matched_through_classes_keep_rows_and_reach_predict(cli, tmp_path):
    pre = model_file(tmp_path)
    _, old_w, _ = conv10(pre)
    labels = tmp_path / "words.txt"
    labels.write_text("".join(f"n{i:08d} thing {i}\n" for i in range(6)).replace("thing 1\n", "Tabby cat, tabby\n")
                      .replace("thing 4\n", "golden retriever\n"))
    data = photos(tmp_path / "photos", ["golden_retriever", "tabby"])
    out = tmp_path / "run"
    code, stdout, err = cli("train", "--model", pre, "--data", data, "--out", out, "--classes", labels, *FAST,
                            "--lr", "1e-12")
    assert code == 0, err
    assert stdout.splitlines()[0].startswith("head kept:")
    m, w, _ = conv10(out / "last.safetensors")
    assert m.classes == ["golden_retriever", "tabby"]
    torch.testing.assert_close(w, old_w[[4, 1]], atol=1e-6, rtol=0)
    code, stdout, err = cli("predict", out / "last.safetensors", data / "test" / "tabby" / "1.png", "--top", "2")
    assert code == 0, err
    assert "tabby" in stdout and "golden_retriever" in stdout


def test_head_new_forces_a_new_head(cli, tmp_path):
    data = photos(tmp_path / "photos", ["n00000005", "n00000002"])
    code, stdout, err = cli("train", "--model", model_file(tmp_path), "--data", data, "--out", tmp_path / "r",
                            "--head", "new", *FAST)
    assert code == 0, err
    assert stdout.splitlines()[0].startswith("new head (--head new)")


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "bn"])
def test_frozen_backbone_trains_conv10_on_features_computed_once(cli, tmp_path, bn):
    pre = model_file(tmp_path, bn)
    data = photos(tmp_path / "photos", ["cat", "dog", "owl"])
    out = tmp_path / "run"
    code, stdout, err = cli("train", "--model", pre, "--data", data, "--out", out, "--freeze", "features",
                            "--epochs", "30", "--no-progress")
    assert code == 0, err
    assert "conv10 alone" in stdout and "computed once" in stdout
    old, new = squeezenet.load(pre), squeezenet.load(out / "last.safetensors")
    for k, v in old.features.state_dict().items():     # backbone (BatchNorm statistics too) untouched
        torch.testing.assert_close(new.features.state_dict()[k], v)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and rows[-1]["val_top1"] == 1.0   # colours are separable on its features
    assert (out / "train_state.safetensors").is_file() and (out / "best.safetensors").is_file()   # Trainer's
    code, stdout, err = cli("train", "--out", out, "--resume", "--no-progress")   # resumes on the frozen path
    assert code == 0 and "conv10 alone" in stdout, err
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 30      # nothing was left to do
    assert new.classes == ["cat", "dog", "owl"]


def _bad(tmp_path):
    pre = model_file(tmp_path)
    one = photos(tmp_path / "one", ["cat"])
    empty = photos(tmp_path / "empty", ["cat", "dog"])
    for p in (empty / "train" / "dog").iterdir():
        p.unlink()
    good = photos(tmp_path / "good", ["cat", "dog"])
    return {"pre": pre, "one": one, "empty": empty, "good": good}


@pytest.mark.parametrize("extra,needle", [
    (("--data", "{one}"), "1 class folder ('cat')"),
    (("--data", "{empty}"), "class folder 'dog' holds no images"),
    (("--data", "{good}", "--head", "keep"), "--head keep: the model has no class 'cat'"),
    (("--data", "{good}", "--freeze", "fire99"), "--freeze 'fire99' matches no layer"),
    (("--data", "{good}", "--preprocess", "torchvision"), "takes 32x32 input (preset small)"),
    (("--data", "{good}", "--head-lr-mult", "0"), "head_lr_mult"),
    (("--data", "digits", "--model", "squeezenet_small", "--head", "new"), "--head applies"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(cli, tmp_path, extra, needle):
    files = _bad(tmp_path)
    out = tmp_path / "run"
    argv = ["train", "--model", "{pre}", "--out", str(out), "--no-progress", *extra]
    code, stdout, err = cli(*[a.format(**files) for a in argv])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert not out.exists()


@pytest.mark.slow
def test_imagenet20_short_finetune_beats_the_restricted_logits_baseline(cli, tmp_path, onnx_zoo_file):
    """The 20-class path at a short budget (2 epochs of the finetune recipe; wnid folders, so
    conv10 keeps the 20 rows): its top-1 on imagenet20/test beats the released weights
    restricted to the same 20 classes' logits, scored in the same run on the same photos."""
    from conftest import shared_path
    from squeezenet.data import build_dataset, make_loader
    from squeezenet.evaluate import evaluate
    from squeezenet.train.finetune import transfer_head
    data = shared_path("data/imagenet20")
    zoo = onnx_zoo_file
    base = squeezenet.load(zoo).eval()
    test = build_dataset(data, "test", preset=base.preprocess)
    assert len(test) == 978 and len(test.classes) == 20
    transfer_head(base, test.classes, mode="keep")
    restricted = evaluate(base, make_loader(test, 100))["top1"]
    assert 0.8 < restricted < 0.9        # 85.6 % measured for the issue
    out = tmp_path / "run"
    # --val-split 0: validate on imagenet20/test as this test always has (the default holds 10 % of train out)
    code, stdout, err = cli("train", "--model", zoo, "--data", data, "--out", out, "--epochs", "2", "--no-progress",
                            "--val-split", "0")
    assert code == 0, err
    assert stdout.splitlines()[0].startswith("head kept:") and "recipe finetune" in stdout
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_count"] == 978
    assert rows[-1]["val_top1"] > restricted, (rows[-1]["val_top1"], restricted)


@pytest.mark.parametrize("frozen", [False, True], ids=["full", "frozen"])
def test_val_split_chooses_on_held_out_train_images_and_the_test_split_only_scores(cli, tmp_path, frozen):
    # best.safetensors used to be chosen on the test split it is scored on; --val-split holds
    # a share of each class out of train to choose on, and the test split scores once, at the end
    data = photos(tmp_path / "d", ["cat", "dog", "owl"], per_class=8)
    extra = ["--freeze", "features", "--epochs", "2"] if frozen else []
    code, out, err = cli("train", "--model", model_file(tmp_path), "--data", data, "--out", tmp_path / "run",
                         "--val-split", "0.25", *FAST, *extra)
    assert code == 0, err
    assert "18 train / 6 val images" in out                # 24 train photos: 6 held out (2 a class)
    scored = [line for line in out.splitlines() if line.startswith("scored on")]
    assert len(scored) == 1 and f"{data}/test (24 images, chose nothing): last top-1" in scored[0], out
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(0 <= r["val_top1"] <= 1 for r in rows)   # validated on the held-out 6
    code, out, err = cli("train", "--model", model_file(tmp_path), "--data", data, "--out", tmp_path / "run2",
                         "--val-split", "0.25", "--val", data, *FAST)
    assert code == 2 and "--val-split validates on images held out of the train split: not with --val" in err
    assert not (tmp_path / "run2").exists()


def test_val_split_holds_out_the_same_share_of_every_class_and_nothing_twice():
    from squeezenet.data import hold_out
    for targets in ([c for c in range(4) for _ in range(30)],      # sorted by class, as folders list
                    [i % 4 for i in range(120)]):                   # cyclic, like sklearn's digits
        keep, held = hold_out(targets, 0.1)
        assert sorted(keep + held) == list(range(120)) and not set(keep) & set(held)
        assert [sum(targets[i] == c for i in held) for c in range(4)] == [3, 3, 3, 3]
    assert hold_out([0, 1] * 5, 0.0) == (list(range(10)), [])


def test_finetuning_chooses_best_on_held_out_train_photos_by_default(cli, tmp_path):
    # issue 24: with no --val, a fine-tune's best epoch is chosen on 10 % of each class held out
    # of train (the same photos every run, listed as data), and the test split only scores
    data = photos(tmp_path / "d", ["cat", "dog", "owl"], per_class=10)
    pre = model_file(tmp_path)
    runs = {}
    for name in ("a", "b"):
        code, out, err = cli("train", "--model", pre, "--data", data, "--out", tmp_path / name, *FAST)
        assert code == 0, err
        runs[name] = out
    out = runs["a"]
    assert "27 train / 3 val images" in out and "(val: 3 images held out of the train split)" in out, out
    assert [l for l in out.splitlines() if l.startswith("scored on")][0].startswith(
        f"scored on {data}/test (30 images, chose nothing): last top-1")
    listed = (tmp_path / "a" / "val_images.txt").read_text().splitlines()
    assert listed == (tmp_path / "b" / "val_images.txt").read_text().splitlines()    # deterministic
    assert len(listed) == 3 and sorted(l.split("/")[0] for l in listed) == ["cat", "dog", "owl"]
    assert all((data / "train" / l).is_file() for l in listed)
    for side in ("best.json", "last.json"):
        v = json.loads((tmp_path / "a" / side).read_text())["validation"]
        assert v == {"on": "held_out", "images": 3, "source": f"{data}/train", "fraction": 0.1,
                     "per_class": {"cat": 1, "dog": 1, "owl": 1}, "list": "val_images.txt"}
    rows = [json.loads(r) for r in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["val_count"] == 3 for r in rows)
    code, out, err = cli("train", "--out", tmp_path / "a", "--resume", "--no-progress")    # resumes as it began
    assert code == 0, err
    assert (tmp_path / "a" / "val_images.txt").read_text().splitlines() == listed


@pytest.mark.parametrize("extra,val_count,on", [(("--val-split", "0"), 30, "test"), (("--val", "{test}"), 30, "val"),
                                               (("--no-val",), None, "none")], ids=["off", "val", "no-val"])
def test_the_default_hold_out_gives_way(cli, tmp_path, extra, val_count, on):
    data = photos(tmp_path / "d", ["cat", "dog", "owl"], per_class=10)
    run = tmp_path / "run"
    argv = [a.format(test=data / "test") for a in extra]
    code, out, err = cli("train", "--model", model_file(tmp_path), "--data", data, "--out", run, *FAST, *argv)
    assert code == 0, err
    assert "30 train /" in out and "scored on" not in out and not (run / "val_images.txt").exists()
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("val_count") for r in rows] == [val_count] * len(rows)
    assert json.loads((run / "last.json").read_text())["validation"]["on"] == on
    if on == "test":
        assert "best's figure chose its epoch" in out


def test_a_hold_out_of_nothing_is_one_line(cli, tmp_path):
    data = photos(tmp_path / "d", ["cat", "dog"], per_class=4)     # 10 % of 4 rounds to none
    code, out, err = cli("train", "--model", model_file(tmp_path), "--data", data, "--out", tmp_path / "run", *FAST)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--val-split 0.1: holds out none of the 8 images" in lines[0]
    assert "--val-split 0" in lines[0] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("frozen", [False, True], ids=["full", "frozen"])
def test_the_library_setup_runs_without_the_cli(tmp_path, frozen):
    # torchtune's shape: the CLI only fills FinetuneSetup from flags; Python fills it directly
    from squeezenet.train import FinetuneSetup
    pre = model_file(tmp_path)
    data = photos(tmp_path / "d", ["cat", "dog", "owl"], per_class=10)
    extra = {"freeze": "features", "epochs": 2} if frozen else {"max_steps": 2}
    config = RECIPES["finetune"].train_config(batch_size=8, progress=False, **extra)
    lines = []
    model = squeezenet.load(pre).train()
    result = FinetuneSetup(model, data, config, source=pre, log=lines.append).run(tmp_path / "run")
    assert lines[0].startswith("new head:") and ("conv10 alone" in lines[1]) is frozen
    v = result.validation
    assert (v.on, v.images, v.per_class) == ("held_out", 3, {"cat": 1, "dog": 1, "owl": 1})
    assert result.test["images"] == 30 and 0 <= result.test["last_top1"] <= 1 and result.exit_code == 0
    assert result.history[-1]["val_count"] == 3 and str(tmp_path / "run" / "val_images.txt") in result.written
    assert squeezenet.load(tmp_path / "run" / "last.safetensors").classes == ["cat", "dog", "owl"]
