"""Which images do what in a compression run, decided in one place: :class:`DataRoles`.

Four roles (the report carries them as data, ``report["data_roles"]``):

* **train**: what retraining, centroid tuning and distillation learn from (labeled training
  data, or unlabeled images distilled from the uncompressed model);
* **calibrate**: images (labels unused) for error compensation and sensitivity;
* **choose**: what candidates are compared on -- images held out of calibration and
  retraining when there are enough (agreement with the uncompressed model's top-1 on held-out
  unlabeled images, or top-1 on held-out labeled train images), else a given score set, else
  the evaluation data itself;
* **score**: the evaluation data every report row's accuracy is measured on.

>>> import torch
>>> from torch.utils.data import TensorDataset
>>> from squeezenet.data import make_loader
>>> val = make_loader(TensorDataset(torch.zeros(8, 3, 4, 4), torch.zeros(8, dtype=torch.long)), 4)
>>> unl = TensorDataset(torch.zeros(100, 3, 4, 4), torch.zeros(100, dtype=torch.long))
>>> r = DataRoles.build(val, unlabeled=unl, choose_images=20)
>>> len(r.choose_batches()), r.chosen_on()
(1, "20 --unlabeled images held out of calibration and retraining (agreement with the uncompressed model's top-1)")
>>> r.info["choose"]["held_out_of"], r.info["train"]["images"], r.info["score"]["images"]
('--unlabeled', 80, 8)
>>> DataRoles.build(val).chosen_on()
'the evaluation data'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

#: Fewest held-out images worth choosing on (fewer: the other data chooses).
MIN_HOLD = 10
#: At most this fraction of a set is held out to choose on.
HOLD_FRACTION = 5            # one image in HOLD_FRACTION
#: An evaluation set larger than this lends every other image to choose on when nothing
#: else can (the figures are then optimistic, and the report says so).
SPLIT_EVALUATION_OVER = 200
#: What agreement-based choosing measures.
AGREEMENT = "agreement with the uncompressed model's top-1"


def same_images(a, b) -> bool:
    """Whether two folder datasets hold the same images (a set with no separate train split)."""
    sa, sb = getattr(a, "samples", None), getattr(b, "samples", None)
    if sa is None or sb is None:
        return False
    return [s[0] for s in sa][:50] == [s[0] for s in sb][:50]


def _len(ds) -> int | None:
    try:
        return len(ds)
    except TypeError:
        return None


def _image_batches(data, batch_size: int) -> list:
    """The images of ``data`` (labels unused) as a list of batches, read once; an unreadable
    image is left out (counted on the dataset)."""
    from ..data import make_loader
    out = []
    for item in make_loader(data, batch_size):
        if isinstance(item, (tuple, list)) and len(item) == 0:   # only unreadable images
            continue
        out.append(item[0] if isinstance(item, (tuple, list)) else item)
    return out


@dataclass
class DataRoles:
    """The data of each role of a compression run (see the module) and its description.

    Made by :meth:`build`, the one place the choosing split is held out; read-only after."""

    score: Any                        # loader: the evaluation data (every report row)
    train: Any = None                 # labeled training data left after any hold-out (or None)
    unlabeled: Any = None             # the unlabeled images as given (labels unused)
    retrain: Any = None               # what retraining uses: unlabeled (distilled) or train
    calibrate: Any = None             # images for error compensation (labels unused)
    distill: Any = None               # augmented images for straight-through distillation
    choose_set: Any = None            # held-out unlabeled images (plain) candidates are scored on
    choose_loader: Any = None         # labeled loader candidates are scored on (None: choose_batches or score)
    choice: str = "score"             # unlabeled | train | given | every other | score
    names: dict = field(default_factory=dict)   # source names: data, train, unlabeled
    info: dict = field(default_factory=dict)    # role -> {source, images, held_out_of, ...}
    _choose: list | None = field(default=None, repr=False)

    @classmethod
    def build(cls, score, train=None, unlabeled=None, *, unlabeled_eval=None, distill=None,
              choose_loader=None, choose_images: int = 500, batch_size: int = 64,
              calibration_images: int | None = None, hold_out_labeled: bool = False,
              train_plain: Callable[[], Any] | None = None, separate_train: bool = True,
              names: dict | None = None) -> "DataRoles":
        """The roles of a run.

        ``score``: the evaluation loader; ``train``: labeled training data; ``unlabeled``:
        images for distillation and calibration (``unlabeled_eval``: the same without
        augmentation; ``distill``: as augmented for distillation). With ``unlabeled`` and
        ``choose_images``, ``min(choose_images, n / 5)`` of them (at least 10, evenly spread)
        are held out to choose on, never calibrated or trained on. Else a given
        ``choose_loader`` chooses; else, with ``hold_out_labeled`` (the CLI's ``--target-size``
        runs), labeled images held out of ``train`` (read through ``train_plain()``, the
        un-augmented view; only when ``separate_train``: train is not the evaluation set), or
        every other evaluation image of a set over 200; else the evaluation data.
        ``names``: how the report names the sources (``data``, ``train``, ``unlabeled``).
        """
        from torch.utils.data import Subset
        from ..data import make_loader, spread_indices
        names = {"data": None, "train": "the train data", "unlabeled": "--unlabeled", **(names or {})}
        r = cls(score=score, train=train, unlabeled=unlabeled, names=names, choose_loader=choose_loader,
                choice="given" if choose_loader is not None else "score")
        r.retrain = unlabeled if unlabeled is not None else train
        r.calibrate = r.retrain
        held_of = None
        if unlabeled is not None:
            plain = unlabeled_eval if unlabeled_eval is not None else unlabeled
            distill = distill if distill is not None else unlabeled
            n = len(unlabeled)
            n_hold = min(choose_images, n // HOLD_FRACTION)
            if n_hold >= MIN_HOLD:
                hold = spread_indices(n, n_hold)
                held = set(hold)
                fit = [i for i in range(n) if i not in held]
                r.retrain, r.calibrate, distill = Subset(unlabeled, fit), Subset(plain, fit), Subset(distill, fit)
                r.choose_set = Subset(plain, hold)
                r.choice, held_of = "unlabeled", names["unlabeled"]
            else:
                r.calibrate = plain
        if hold_out_labeled and choose_loader is None and not (unlabeled is not None and choose_images):
            n_hold = min(choose_images, len(train) // HOLD_FRACTION) if train is not None else 0
            if n_hold >= MIN_HOLD and separate_train:
                hold = spread_indices(len(train), n_hold)
                held = set(hold)
                plain = train_plain() if train_plain is not None else train
                r.choose_loader = make_loader(Subset(plain, hold), batch_size)
                r.train = Subset(train, [i for i in range(len(train)) if i not in held])
                if unlabeled is None:
                    r.retrain = r.calibrate = r.train
                r.choice, held_of = "train", names["train"]
            else:
                ds = getattr(score, "dataset", None)
                if ds is not None and len(ds) > SPLIT_EVALUATION_OVER:
                    r.choose_loader = make_loader(Subset(ds, range(0, len(ds), 2)), batch_size)
                    r.choice = "every other"
        r.distill = distill if distill is not None else r.retrain
        r.info = r._describe(held_of, calibration_images)
        return r

    # ------------------------------------------------------------------ the report's view

    def _describe(self, held_of: str | None, calibration_images: int | None) -> dict:
        n = self.names
        scored = n["data"] or "the evaluation data"
        score_ds = getattr(self.score, "dataset", None)
        info: dict[str, dict] = {"score": {"source": scored,
                                           "images": _len(score_ds) if score_ds is not None else None}}
        if self.retrain is not None:
            distilled = self.unlabeled is not None
            info["train"] = {"source": n["unlabeled"] if distilled else n["train"], "images": _len(self.retrain),
                             "labels": not distilled, "held_out_of": None}
        if self.calibrate is not None and calibration_images != 0:
            have = _len(self.calibrate)
            want = have if calibration_images is None or have is None else min(calibration_images, have)
            info["calibrate"] = {"source": n["unlabeled"] if self.unlabeled is not None else n["train"],
                                 "images": want, "of": have, "labels": False}
        if self.choice == "unlabeled":
            choose = {"source": n["unlabeled"], "images": len(self.choose_set),
                      "held_out_of": held_of, "measure": AGREEMENT, "split": "held out"}
        elif self.choice == "train":
            choose = {"source": n["train"], "images": _len(self.choose_loader.dataset), "held_out_of": held_of,
                      "measure": "top-1", "split": "held out"}
        elif self.choice == "every other":
            choose = {"source": scored, "images": _len(self.choose_loader.dataset), "held_out_of": None,
                      "measure": "top-1", "split": "every other image"}
        elif self.choice == "given":
            choose = {"source": "the score data", "images": _len(getattr(self.choose_loader, "dataset", None)),
                      "held_out_of": None, "measure": "top-1", "split": "given"}
        else:
            choose = {"source": scored, "images": info["score"]["images"], "held_out_of": None,
                      "measure": "top-1", "split": "the scored split"}
        info["choose"] = choose
        return {k: info[k] for k in ("train", "calibrate", "choose", "score") if k in info}

    def choose_batches(self) -> list | None:
        """The held-out unlabeled images as batches of 50, read once, the first time asked (an
        unreadable image is left out, and the role's image count says so); None without."""
        if self.choose_set is None:
            return None
        if self._choose is None:
            self._choose = _image_batches(self.choose_set, 50)
            self.info["choose"]["images"] = sum(len(b) for b in self._choose)
        return self._choose

    def chosen_on(self) -> str:
        """What chose between candidates, in words (the report's ``chosen_on``)."""
        c = self.info["choose"]
        if self.choice == "unlabeled":
            return f"{c['images']} {c['source']} images held out of calibration and retraining ({AGREEMENT})"
        if self.choice == "train":
            return f"{c['images']} images held out of {c['source']} (not calibrated or retrained on)"
        if self.choice == "every other":
            return f"every other image of {c['source']} (the scored split: the figures are optimistic)"
        if self.choice == "given":
            return "the score data"
        return f"{self.names['data']} (the scored split)" if self.names["data"] else "the evaluation data"

    def scored_on(self) -> str:
        return self.info["score"]["source"]


def format_roles(info: dict) -> str:
    """One line per role of a report's ``data_roles``.

    >>> print(format_roles({"choose": {"source": "--unlabeled", "images": 20, "held_out_of": "--unlabeled",
    ...                                "measure": "top-1", "split": "held out"},
    ...                     "score": {"source": "digits/test", "images": 60}}))
    choose:    20 images of --unlabeled, held out (top-1)
    score:     60 images of digits/test
    """
    lines = []
    for role, d in info.items():
        n = f"{d['images']:,} images of " if d.get("images") is not None else ""
        extra = []
        if d.get("split") in ("held out", "every other image"):
            extra.append(d["split"])
        if d.get("of") is not None and d.get("images") != d.get("of"):
            extra.append(f"drawn from {d['of']:,}")
        if d.get("labels") is False and role == "train":
            extra.append("distilled, labels unused")
        text = f"{role + ':':<11}{n}{d['source']}"
        if extra:
            text += ", " + ", ".join(extra)
        if d.get("measure"):
            text += f" ({d['measure']})"
        lines.append(text)
    return "\n".join(lines)
