"""Fine-tuning a trained SqueezeNet on new data: the head, what trains, and the frozen path.

Three pieces, each usable alone:

* :func:`plan_head` / :func:`transfer_head` decide whether the data's classes get a **new**
  conv10 or are a subset of the model's classes whose rows are **kept** (epoch 0 then scores
  as the pretrained model does on them), apply it with
  :meth:`~squeezenet.models.SqueezeNet.reset_classifier`, and say in one line which happened.
* :func:`freeze` and :func:`param_groups` implement ``--freeze NAMES`` (frozen weights get no
  gradient and frozen BatchNorm layers keep their running statistics) and ``--head-lr-mult``
  (conv10's learning rate is the base lr times the multiplier; the Trainer reads ``lr_mult``
  from each optimizer group).
* :func:`fit_head` is the frozen-backbone path: the backbone's features are computed ONCE
  (:func:`extract_features`), then conv10 alone is trained on them. A linear probe over
  thousands of photos then costs one forward pass plus seconds, not epochs of convolutions.

>>> import torch, squeezenet
>>> m = squeezenet.create_model("squeezenet_small", num_classes=4)
>>> m.classes = ["cat", "dog", "fox", "owl"]
>>> transfer_head(m, ["owl", "cat"]).kind, m.classes
('keep', ['owl', 'cat'])
"""
from __future__ import annotations

import math
import re
import time
import types
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, SqueezeNetError

HEAD_MODES = ("auto", "new", "keep")


# ------------------------------------------------------------------------------------ head

@dataclass(frozen=True)
class HeadPlan:
    """What :func:`apply_head` does to a model for a data set's classes.

    ``kind``: ``same`` (the data's classes are the model's, in its order: nothing changes),
    ``keep`` (a subset or reordering of the model's classes: conv10 keeps those rows) or
    ``new`` (a fresh conv10). ``classes``: the data's class names, the model's new class list.
    ``keep_rows``: the old conv10 row of each data class (``keep`` only). ``message``: one line
    for the user saying which happened.
    """

    kind: str
    classes: tuple
    keep_rows: tuple | None
    message: str


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


def mapping_from_labels(lines: Iterable[str]) -> dict[str, str | None]:
    """Names -> class id from ``synset_words.txt``-style lines (``n01440764 tench, Tinca tinca``).

    Every comma-separated name after the id maps to the id, compared case-insensitively with
    spaces, ``_`` and ``-`` alike (a folder ``english_springer`` matches "English springer").
    A name given to two ids (ImageNet's two "crane"s) maps to None: it names no class.

    >>> mapping_from_labels(["n1 tench, Tinca tinca", "n2 crane", "n3 crane"])["tinca tinca"], \\
    ...     mapping_from_labels(["n2 crane", "n3 crane"])["crane"]
    ('n1', None)
    """
    out: dict[str, str | None] = {}
    for line in lines:
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        cid, words = parts
        for name in (w for w in words.split(",") if w.strip()):
            key = _norm(name)
            out[key] = cid if out.get(key, cid) == cid else None
    return out


def plan_head(model_classes: Sequence[str] | None, data_classes: Sequence[str], mode: str = "auto",
              mapping: Mapping[str, str | None] | None = None, num_outputs: int | None = None) -> HeadPlan:
    """Decide the head for fine-tuning a model whose outputs are ``model_classes`` on data
    whose classes are ``data_classes`` (folder names, in the data's index order).

    A data class matches a model class when its name is the class id, or when ``mapping``
    (e.g. :func:`mapping_from_labels` of a ``--classes`` file) maps it, case-insensitively, to
    one. ``mode``: ``auto`` keeps rows when every data class matches a different model class
    and builds a new head otherwise; ``keep`` does the same but a data class the model lacks
    is an error naming it; ``new`` always builds a new head. A model without a class list whose
    ``num_outputs`` is the data's class count keeps its head (outputs taken in the data's
    order) unless ``mode`` is ``new``.

    >>> plan_head(["a", "b", "c"], ["c", "a"]).keep_rows
    (2, 0)
    >>> plan_head(["a", "b", "c"], ["x", "a"]).kind
    'new'
    """
    if mode not in HEAD_MODES:
        raise ConfigError(f"head mode {mode!r}: must be one of {', '.join(HEAD_MODES)}")
    data = [str(c) for c in data_classes]
    if len(data) < 2:
        shown = f" ({data[0]!r})" if data else ""
        raise ConfigError(f"the data has {len(data)} class{'' if len(data) == 1 else 'es'}{shown}; "
                          f"training a classifier needs at least 2 class folders")
    n = len(data)
    if model_classes is None:
        if mode != "new" and num_outputs == n:
            return HeadPlan("same", tuple(data), None,
                            f"head unchanged: the model has no class list and {n} outputs, taken as the data's "
                            f"{n} classes in order (--head new rebuilds conv10)")
        if mode == "keep":
            raise ConfigError("--head keep: the model has no class list, so no class of the data can be "
                              "matched to its outputs; use --head new")
        return HeadPlan("new", tuple(data), None,
                        f"new head: conv10 rebuilt for the data's {n} classes (the model has no class list)")
    model = [str(c) for c in model_classes]
    index = {c: i for i, c in enumerate(model)}
    lower = {}
    for i, c in enumerate(model):
        lower.setdefault(_norm(c), i)
    mapping = {_norm(k): v for k, v in (mapping or {}).items()}

    def row(name: str) -> int | None:
        if name in index:
            return index[name]
        if _norm(name) in lower:
            return lower[_norm(name)]
        target = mapping.get(_norm(name))
        return index.get(target) if target is not None else None

    rows = [row(c) for c in data]
    missing = [c for c, r in zip(data, rows) if r is None]
    m = len(model)
    if mode == "new":
        return HeadPlan("new", tuple(data), None,
                        f"new head (--head new): conv10 rebuilt for the data's {n} classes; "
                        f"the model's {m} outputs are dropped")
    def cannot_keep(refusal: str, reason: str) -> HeadPlan:
        """--head keep refused (one line), else a new head and the reason why."""
        if mode == "keep":
            raise ConfigError(f"--head keep: {refusal}")
        return HeadPlan("new", tuple(data), None, f"new head: {reason}, so conv10 is rebuilt for the data's {n} classes")

    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return cannot_keep(f"the model has no class {missing[0]!r}{more} among its {m} classes; use --head new, "
                           f"or map the names with --classes",
                           f"{missing[0]!r}{more} is not a class of the model's {m}")
    dup = sorted({model[r] for r in rows if rows.count(r) > 1})
    if dup:
        return cannot_keep(f"two of the data's classes match the model's class {dup[0]!r}; use --head new",
                           f"two of the data's classes match the model's class {dup[0]!r}")
    if rows == list(range(m)):
        return HeadPlan("same", tuple(data), None,
                        f"head unchanged: the data's {n} classes are the model's, in its order")
    return HeadPlan("keep", tuple(data), tuple(rows),
                    f"head kept: the data's {n} classes are among the model's {m}; conv10 starts from their "
                    f"rows, so epoch 0 scores them as the model does")


def apply_head(model: nn.Module, plan: HeadPlan) -> nn.Module:
    """Rebuild ``model``'s conv10 as ``plan`` says and set ``model.classes``; returns ``model``."""
    if plan.kind == "keep":
        model.reset_classifier(len(plan.classes), keep_rows=plan.keep_rows)
    elif plan.kind == "new":
        model.reset_classifier(len(plan.classes))
    model.classes = list(plan.classes)
    return model


def transfer_head(model: nn.Module, data_classes: Sequence[str], mode: str = "auto",
                  mapping: Mapping[str, str | None] | None = None, features=None) -> HeadPlan:
    """:func:`plan_head` for ``model``'s class list, then :func:`apply_head`; returns the plan
    (print ``plan.message``).

    ``features``: ``(feats, targets)`` of some training photos (:func:`sample_features`). A
    new head then starts from their class means (:func:`imprint_head`) at the old conv10's row
    norm, instead of Gaussian noise: conv10 is followed by a ReLU, and on 20 ImageNet classes a
    noise-initialised head left 32 % of its class maps dead (all zero) after a linear probe
    (72 % held-out top-1, against 85 % for imprinted rows; measured for issue 12)."""
    classes = getattr(model, "classes", None)
    n_out = getattr(getattr(model, "config", None), "num_classes", None)
    if classes is not None and n_out is not None and len(classes) != n_out:
        classes = None   # a class list that does not describe the outputs matches nothing
    plan = plan_head(classes, data_classes, mode, mapping, num_outputs=n_out)
    if plan.kind == "new" and features is not None:
        w = model.final_conv.weight.detach().flatten(1)
        scale = float(w.norm(dim=1).mean())
        bias = float(model.final_conv.bias.detach().mean()) if model.final_conv.bias is not None else 0.0
        apply_head(model, plan)
        n = imprint_head(model, *features, scale=scale, bias=bias)
        import dataclasses
        return dataclasses.replace(plan, message=f"{plan.message}; its rows start from the class means "
                                                 f"of the features of {n} training photos")
    apply_head(model, plan)
    return plan


def class_sample(targets: Sequence[int], per_class: int, seed: int = 0) -> list[int]:
    """Indices of up to ``per_class`` samples of each class (a seeded random choice), sorted.

    >>> class_sample([0, 1, 0, 1, 0], 2, seed=0)
    [1, 2, 3, 4]
    """
    import random
    by: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by.setdefault(int(t), []).append(i)
    rng = random.Random(seed)
    out: list[int] = []
    for t in sorted(by):
        idx = by[t]
        out += idx if len(idx) <= per_class else rng.sample(idx, per_class)
    return sorted(out)


def sample_features(model: nn.Module, dataset, per_class: int = 50, batch_size: int = 64, seed: int = 0,
                    progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`extract_features` of up to ``per_class`` photos of each class of ``dataset`` (it
    needs ``targets``), e.g. for :func:`transfer_head`'s imprinting."""
    from torch.utils.data import Subset
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise SqueezeNetError("sample_features needs a dataset with targets")
    sub = Subset(dataset, class_sample(targets, per_class, seed))
    return extract_features(model, sub, batch_size, progress=progress, desc="head init")


@torch.no_grad()
def imprint_head(model: nn.Module, feats: torch.Tensor, targets: torch.Tensor, scale: float | None = None,
                 bias: float | None = None) -> int:
    """Set each conv10 row to the mean of its class's spatially averaged features, scaled to
    norm ``scale`` (default: conv10's present mean row norm), biases to ``bias`` (default: their
    present mean): weight imprinting (Qi et al., CVPR 2018). The backbone's features are
    non-negative (post-ReLU), so every class map starts alive. A class without samples keeps
    its row. Returns the number of samples used."""
    conv = model.final_conv
    w = conv.weight.flatten(1)
    scale = float(w.norm(dim=1).mean()) if scale is None else float(scale)
    pooled = feats.float().mean(dim=(2, 3)) if feats.dim() == 4 else feats.float()
    if pooled.shape[1] != w.shape[1]:
        raise ConfigError(f"features have {pooled.shape[1]} channels, conv10 takes {w.shape[1]}")
    for k in range(conv.out_channels):
        sel = targets == k
        if bool(sel.any()):
            mu = pooled[sel].mean(0)
            w[k] = mu / mu.norm().clamp_min(1e-12) * scale
    conv.weight.copy_(w.view_as(conv.weight))
    if conv.bias is not None:
        conv.bias.fill_(float(conv.bias.mean()) if bias is None else float(bias))
    return int(len(targets))


# ------------------------------------------------------------------------------ freezing

def layer_names(model: nn.Module) -> dict[str, str]:
    """The paper's layer names -> module paths: ``conv1``, ``fire2``..``fire9``, ``conv10``.

    >>> import squeezenet
    >>> layer_names(squeezenet.create_model("squeezenet1_1"))["fire4"]
    'features.6'
    """
    from ..models.fire import Fire
    out: dict[str, str] = {}
    features = getattr(model, "features", None)
    if features is not None:
        fire = 2
        for i, mod in enumerate(features):
            if isinstance(mod, nn.Conv2d) and "conv1" not in out:
                out["conv1"] = f"features.{i}"
            elif isinstance(mod, Fire):
                out[f"fire{fire}"] = f"features.{i}"
                fire += 1
    if hasattr(model, "final_conv"):
        out["conv10"] = "classifier.1"
    return out


def resolve_freeze(model: nn.Module, names: str | Iterable[str] | None) -> list[str]:
    """Module paths for ``--freeze`` names (comma-separated or a list): a module path
    (``features``, ``features.3``, ``classifier``), a paper layer name (``conv1``, ``fire2``..
    ``fire9``, ``conv10``; ``conv1`` includes its BatchNorm) or ``none``. A name matching
    nothing is a :class:`~squeezenet.errors.ConfigError` naming it."""
    if names is None:
        return []
    if isinstance(names, str):
        names = names.split(",")
    names = [n.strip() for n in names if n and n.strip()]
    modules = dict(model.named_modules())
    aliases = layer_names(model)
    paths: list[str] = []
    for name in names:
        if name.lower() == "none":
            continue
        path = aliases.get(name.lower(), name)
        if not path or path not in modules or not any(True for _ in modules[path].parameters()):
            import difflib
            known = ["features", "classifier", *aliases]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(known)}, or a module path)"
            raise ConfigError(f"--freeze {name!r} matches no layer with weights{hint}")
        paths.append(path)
        if name.lower() == "conv1" and path.startswith("features."):
            nxt = f"features.{int(path.split('.')[1]) + 1}"
            if isinstance(modules.get(nxt), nn.BatchNorm2d):
                paths.append(nxt)
    return paths


def freezes_backbone(model: nn.Module, names: str | Iterable[str] | None) -> bool:
    """True when ``names`` freeze every parameter of ``model.features`` and none of conv10's:
    training then only needs the backbone's features once (:func:`fit_head`), not a forward
    pass per epoch.

    >>> import squeezenet
    >>> m = squeezenet.create_model("squeezenet_small")
    >>> freezes_backbone(m, "features"), freezes_backbone(m, "conv1,fire2"), freezes_backbone(m, None)
    (True, False, False)
    """
    paths = resolve_freeze(model, names)
    if not paths:
        return False
    modules = dict(model.named_modules())
    frozen = {id(p) for path in paths for p in modules[path].parameters()}
    body = {id(p) for p in model.features.parameters()}
    head = {id(p) for p in head_parameters(model)}
    return body <= frozen and not (head & frozen)


def _stay_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze(model: nn.Module, names: str | Iterable[str] | None) -> list[str]:
    """Freeze the modules ``names`` select (see :func:`resolve_freeze`): their parameters get
    ``requires_grad=False`` and their BatchNorm layers stay in eval mode (running statistics
    unchanged) even when the model is put in training mode. Returns the frozen module paths.
    """
    paths = resolve_freeze(model, names)
    modules = dict(model.named_modules())
    for path in paths:
        mod = modules[path]
        for p in mod.parameters():
            p.requires_grad_(False)
        for sub in mod.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.train = types.MethodType(_stay_eval, sub)
                sub.eval()
    return paths


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The classifier's parameters (conv10)."""
    classifier = getattr(model, "classifier", None)
    return list(classifier.parameters()) if classifier is not None else []


def param_groups(model: nn.Module, head_lr_mult: float = 1.0) -> list[dict]:
    """Optimizer groups of the trainable parameters: the backbone (``lr_mult`` 1) and the head
    (``lr_mult`` = ``head_lr_mult``); with a multiplier of 1, one group of all of them (the
    layout of training-state files written before groups existed). Frozen parameters are left
    out; an empty group is dropped; nothing trainable at all is a ConfigError."""
    if not head_lr_mult > 0:
        raise ConfigError(f"head_lr_mult={head_lr_mult!r}: must be > 0")
    if head_lr_mult == 1:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("nothing to train: --freeze froze every parameter of the model")
        return [{"params": params, "lr_mult": 1.0}]
    head_ids = {id(p) for p in head_parameters(model)}
    head = [p for p in model.parameters() if p.requires_grad and id(p) in head_ids]
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [g for g in ({"params": body, "lr_mult": 1.0, "name": "backbone"},
                          {"params": head, "lr_mult": float(head_lr_mult), "name": "head"}) if g["params"]]
    if not groups:
        raise ConfigError("nothing to train: --freeze froze every parameter of the model")
    return groups


def make_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """The optimizer ``config`` names (``sgd`` | ``adamw``) over :func:`param_groups`."""
    groups = param_groups(model, getattr(config, "head_lr_mult", 1.0))
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=config.nesterov)


# ---------------------------------------------------------------------- frozen backbone

@torch.no_grad()
def extract_features(model: nn.Module, dataset, batch_size: int = 64, views: int = 1,
                     dtype: torch.dtype = torch.float16, progress: bool = False,
                     desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """``model.features`` (eval mode) of every sample of ``dataset``, ``views`` times (each
    pass draws the dataset's augmentation anew). Returns ``(features, targets)`` with
    ``len(dataset) * views`` rows, stored as ``dtype`` (float16 halves the memory: SqueezeNet
    1.1 at 224 gives 512x13x13 per image, 173 KB in float16). Unreadable images are dropped."""
    from ..data import make_loader
    was = model.training
    model.eval()
    feats, targets = [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(dataset) * views, desc=desc, unit="img", leave=False, dynamic_ncols=True)
    try:
        for _ in range(views):
            for x, y in make_loader(dataset, batch_size):
                feats.append(model.features(x).to(dtype))
                targets.append(y)
                if bar is not None:
                    bar.update(len(y))
    finally:
        if bar is not None:
            bar.close()
        model.train(was)
    if not feats:
        raise SqueezeNetError("no readable images to compute features from")
    return torch.cat(feats), torch.cat(targets)


def _head_logits(model: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    return torch.flatten(model.classifier(feats.float()), 1)


@torch.no_grad()
def score_features(model: nn.Module, feats: torch.Tensor, targets: torch.Tensor,
                   batch_size: int = 512) -> dict[str, float]:
    """Top-1 / top-5 / loss of the model's head on cached features."""
    was = model.classifier.training
    model.classifier.eval()
    c1 = c5 = loss = 0.0
    for i in range(0, len(targets), batch_size):
        logits, y = _head_logits(model, feats[i:i + batch_size]), targets[i:i + batch_size]
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices.eq(y.view(-1, 1))
        c1 += float(top[:, 0].sum())
        c5 += float(top.any(dim=1).sum())
    model.classifier.train(was)
    n = max(1, len(targets))
    return {"val_top1": c1 / n, "val_top5": c5 / n, "val_loss": loss / n, "val_count": len(targets)}


def fit_head(model: nn.Module, train_data, config, val_data=None, views: int = 1,
             progress: bool = True, features=None, val_features=None) -> list[dict]:
    """Train conv10 alone on the frozen backbone's features, computed once.

    ``config`` is a :class:`~squeezenet.train.TrainConfig`: ``epochs``, ``batch_size``,
    ``optimizer``, ``lr`` (times ``head_lr_mult``), ``schedule``/``warmup_steps`` (per step),
    ``weight_decay``, ``momentum``, ``label_smoothing``, ``dropout`` and ``seed`` apply.
    ``views`` passes over ``train_data`` are cached (its augmentation drawn anew each time).
    ``features`` / ``val_features``: ``(feats, targets)`` already computed (then ``train_data``
    / ``val_data`` are not read).
    The trained conv10 stays in ``model``; returns one metrics dict per epoch (``val_*`` on
    ``val_data`` when given), with ``features_s`` the one-off feature pass.
    """
    from .config import lr_at, warmup_note
    torch.manual_seed(config.seed)
    if config.dropout is not None:
        for m in model.classifier.modules():
            if isinstance(m, nn.Dropout):
                m.p = config.dropout
        if hasattr(model, "config") and hasattr(model.config, "replace"):
            model.config = model.config.replace(dropout=config.dropout)
    grad_was = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    head = head_parameters(model)
    for p in head:
        p.requires_grad_(True)
    t0 = time.perf_counter()
    if features is None:
        features = extract_features(model, train_data, config.eval_batch_size, views, progress=progress,
                                    desc="train features")
    feats, targets = features
    val = val_features
    if val is None and val_data is not None:
        val = extract_features(model, val_data, config.eval_batch_size, 1, progress=progress, desc="val features")
    features_s = time.perf_counter() - t0
    lr = config.lr * getattr(config, "head_lr_mult", 1.0)
    if config.optimizer == "adamw":
        opt = torch.optim.AdamW(head, lr=lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(head, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay,
                              nesterov=config.nesterov)
    n = len(targets)
    per_epoch = math.ceil(n / config.batch_size)
    total = config.max_steps or config.epochs * per_epoch
    note = warmup_note(config, total)
    if note:
        print(note, flush=True)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    step, epoch = 0, 0
    model.classifier.train()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="head", unit="step", leave=False, dynamic_ncols=True)
    try:
        while step < total:
            t = time.perf_counter()
            order = torch.randperm(n, generator=gen)
            loss_sum, seen = 0.0, 0
            for i in range(0, n, config.batch_size):
                if step >= total:
                    break
                b = order[i:i + config.batch_size]
                for g in opt.param_groups:
                    g["lr"] = lr_at(config, step, total) * (lr / config.lr)
                loss = F.cross_entropy(_head_logits(model, feats[b]), targets[b],
                                       label_smoothing=config.label_smoothing)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise SqueezeNetError(f"loss became {value} at head step {step + 1}; lower --lr "
                                          f"(now {config.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_sum += value * len(b)
                seen += len(b)
                if bar is not None:
                    bar.update(1)
            epoch += 1
            rec = {"epoch": epoch, "step": step, "train_loss": loss_sum / max(1, seen),
                   "seconds": time.perf_counter() - t, "features_s": features_s}
            if val is not None:
                rec.update(score_features(model, *val))
            history.append(rec)
    finally:
        if bar is not None:
            bar.close()
        for p, was in grad_was.items():
            p.requires_grad_(was)
    model.eval()
    return history
