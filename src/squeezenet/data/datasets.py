"""Datasets: image folders (ImageNet layout, optional class-index order), .tar.gz archives of
such folders, CIFAR-10 as JPEG folders, and scikit-learn's handwritten digits.

Every dataset has ``.classes`` (the model's class-index order). Unreadable or truncated
images never crash an epoch: :meth:`ImageFolderDataset.__getitem__` returns a
:class:`Skipped` marker, :func:`make_loader`'s batches drop it, and the loader records it on
the dataset (``dataset.skipped``: path -> reason) with one warning line per file. Under
``strict=True`` the first bad image raises :class:`~squeezenet.errors.FormatError` instead.
"""
from __future__ import annotations

import copy
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError, FormatError, SqueezeNetError, first_line
from ..models.classes import check_classes, split_class_line
from .archive import MAX_NESTED_ARCHIVES, content_root, is_archive, unpack
from .images import UnreadableImage, read_image
from .transforms import PRESETS, check_preset, digits_train_transform, get_transform

SPLITS = ("train", "test")
#: The built-in names build_dataset() understands besides paths.
BUILTIN = ("digits", "cifar10")


def preset_for(model=None, data: str | os.PathLike | None = None) -> str:
    """The preprocessing preset to use for ``model`` (and/or ``data``) when none is given:
    the model's own (``model.preprocess``, stored in its file), else ``small`` for the built-in
    32x32 datasets, else the registry's preset for the model's stem (``small`` for
    ``squeezenet_small``), else ``torchvision``.

    >>> import squeezenet
    >>> preset_for(squeezenet.create_model("squeezenet_small")), preset_for(data="digits")
    ('small', 'small')
    >>> preset_for(squeezenet.create_model("squeezenet1_1"), data="photos/")
    'torchvision'
    """
    own = getattr(model, "preprocess", None)
    if own:
        return own
    if data is not None and str(data) in BUILTIN:
        return "small"
    if model is not None:
        from ..models.registry import default_preset
        return default_preset(model)
    return "torchvision"


def input_size_for(model) -> tuple[int, int, int]:
    """The ``(C, H, W)`` input of ``model``: the one rule every command uses (eval, predict,
    bench, export, summary, the runtime, compression). Its data config's ``input_size`` where
    one is recorded, else its own preset's crop (``model.preprocess``: what ``eval`` feeds it),
    else the size its architecture is documented for (the registry: 227 v1.0, 224 v1.1, 32
    small).

    >>> import squeezenet
    >>> m = squeezenet.create_model("squeezenet1_0")
    >>> input_size_for(m)
    (3, 227, 227)
    >>> m.preprocess = "torchvision"; input_size_for(m)
    (3, 224, 224)
    >>> m.data_config = m.data_config.replace(input_size=(3, 256, 256)); input_size_for(m)
    (3, 256, 256)
    """
    from ..models.data_config import data_config
    from ..models.registry import default_input_size
    cfg = data_config(model)
    if cfg.input_size is not None:
        return cfg.input_size
    channels = int(getattr(getattr(model, "config", None), "in_channels", 3) or 3)
    side = PRESETS[cfg.preset].input_size if cfg.preset in PRESETS else default_input_size(model)
    return (channels, side, side)


def shared_dir() -> Path:
    """The shared fixtures/data folder: ``$SQUEEZENET_SHARED``, else ``../shared`` of the
    current folder, else (in a source checkout only, never from an installed wheel, whose
    ``<venv>/lib/../shared`` means nothing) ``../shared`` of the checkout. When none exists,
    the current folder's ``../shared`` (:func:`shared_dir_hint` says where to set it)."""
    env = os.environ.get("SQUEEZENET_SHARED")
    if env:
        return Path(env)
    cands = [Path.cwd().parent / "shared"]
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file() and (repo / "src" / "squeezenet").is_dir():   # a checkout
        cands.append(repo.parent / "shared")
    for cand in cands:
        if cand.is_dir():
            return cand
    return cands[0]


def shared_dir_hint() -> str:
    """Where :func:`shared_dir` looked, for a one-line error when a shared dataset is missing."""
    env = os.environ.get("SQUEEZENET_SHARED")
    if env:
        return f"SQUEEZENET_SHARED={env}"
    return (f"no SQUEEZENET_SHARED set, and {Path.cwd().parent / 'shared'} (../shared of the current folder) "
            f"was tried; set SQUEEZENET_SHARED to the folder holding data/")


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class ids in model index order: the first word of each non-empty line.

    The one class-list reader: reads both ``synsets.txt`` (``n01440764``) and
    ``synset_words.txt`` (``n01440764 tench, Tinca tinca``); a missing, special, oversized,
    non-UTF-8, empty or repeating list is a one-line :class:`~squeezenet.errors.FormatError`
    naming the file (the ids go through the one class-list check,
    :func:`squeezenet.models.classes.check_classes`).
    :func:`read_class_names` also returns the human-readable names.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.txt")
    >>> _ = open(p, "w").write("n01440764 tench\\nn01443537 goldfish\\n")
    >>> read_class_list(p)
    ['n01440764', 'n01443537']
    """
    return read_class_names(path)[0]


def read_class_names(path: str | os.PathLike) -> tuple[list[str], list[str] | None]:
    """``(ids, names)`` of a class-list file: the first word of each non-empty line is the id,
    the rest of the line its human-readable name (``synset_words.txt``: ``n02124075 Egyptian
    cat``). ``names`` is None when no line has one (``synsets.txt``); a line without a name
    gets its id. Errors as :func:`read_class_list`.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.txt")
    >>> _ = open(p, "w").write("n01440764 tench, Tinca tinca\\nn02124075 Egyptian cat\\n")
    >>> read_class_names(p)
    (['n01440764', 'n02124075'], ['tench, Tinca tinca', 'Egyptian cat'])
    """
    from ..io import read_text
    lines = read_text(path, "class list file").splitlines()
    rows = [split_class_line(l) for l in lines if l.strip()]   # an id with a space is a JSON string
    classes = [r[0] for r in rows]
    if not classes:
        raise FormatError(path, "class list is empty")
    try:
        classes = check_classes(classes)
    except ConfigError as e:
        if "twice" in str(e):
            dup = sorted({c for c in classes if classes.count(c) > 1})
            raise FormatError(path, f"class list has duplicate ids: {', '.join(dup[:3])}") from None
        raise FormatError(path, f"bad class list ({first_line(e)})") from None
    names = [r[1].strip() if len(r) > 1 else r[0] for r in rows] if any(len(r) > 1 for r in rows) else None
    return classes, names


def read_labels(path: str | os.PathLike) -> list[str]:
    """Human-readable labels, one per line (``synset_words.txt``: id then names); a missing,
    special, oversized or binary file is a one-line :class:`~squeezenet.errors.FormatError`."""
    from ..io import read_text
    return [l.strip() for l in read_text(path, "labels file").splitlines() if l.strip()]


def as_class_list(classes) -> list[str] | None:
    """``classes`` as a list of names: None stays None, a path is read with
    :func:`read_class_list`, any other sequence goes through the one class-list check."""
    if classes is None:
        return None
    if isinstance(classes, (str, os.PathLike)):
        return read_class_list(classes)
    return check_classes([str(c) for c in classes])


@dataclass(frozen=True)
class Skipped:
    """Marker returned in place of a sample whose image could not be read."""

    path: str
    reason: str


def _warn(message: str) -> None:
    sys.stderr.write(f"squeezenet: warning: {message}\n")


def _inside(real: str, tree: str) -> bool:
    return real == tree or real.startswith(tree.rstrip(os.sep) + os.sep)


def scan_images(top: str | os.PathLike, recursive: bool = True) -> tuple[list[str], dict[str, str]]:
    """(image files under ``top``, {path: why it is not read} for image-named entries that are
    not regular files), in torchvision ``ImageFolder``'s order (folders by path, files by name).

    The walk is linear and cannot hang: it lists regular files only (a FIFO or device named
    ``x.jpg`` is reported, never opened), visits each real folder once (a link loop such as
    ``up -> ..`` is detected), and never follows a folder link out of ``top``'s real folder
    (one warning line each).
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS
    top = str(top)
    tree = os.path.realpath(top)
    seen: set[tuple[int, int]] = set()
    folders: list[tuple[str, list[str]]] = []
    odd: dict[str, str] = {}
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise FormatError(d, f"cannot list folder ({e.strerror or first_line(e)})") from None
        files = []
        for e in entries:   # the entry types come with the listing (d_type): a stat only for links
            try:
                if e.is_symlink():
                    try:
                        mode = os.stat(e.path).st_mode
                    except OSError:
                        continue   # a broken link
                    if stat.S_ISDIR(mode):
                        if not recursive:
                            continue
                        real = os.path.realpath(e.path)
                        if _inside(real, tree):
                            stack.append(e.path)
                        else:
                            _warn(f"not following folder link {e.path} -> {real} (outside {top})")
                        continue
                    regular = stat.S_ISREG(mode)
                elif e.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(e.path)
                    continue
                else:
                    regular = e.is_file(follow_symlinks=False)
            except OSError:
                continue
            if not e.name.lower().endswith(IMG_EXTENSIONS):
                continue
            if regular:
                files.append(e.name)
            else:
                odd[e.path] = "not a regular file"   # a FIFO, device or socket: never opened
        folders.append((d, files))
    return [os.path.join(d, f) for d, files in sorted(folders) for f in files], odd


class ImageFolderDataset(Dataset):
    """A folder of class folders (ImageNet layout), listed by :func:`scan_images`.

    With ``classes`` (a list or a class-list file such as ``synsets.txt``), targets are indices
    into that list and the folder may hold any subset of it; a folder name that is not in the
    list is an error naming it. Without, classes are the sorted folder names. Example:
    ``ImageFolderDataset("val/", classes="../shared/fixtures/imagenet/synsets.txt")``.
    Image-named entries that are not regular files are skipped and counted (``skipped``).
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 classes=None, strict: bool = False, flat: bool = False) -> None:
        root = Path(root)
        wanted = as_class_list(classes)
        real_root = os.path.realpath(root)
        folders = []
        try:
            entries = sorted(root.iterdir())
        except OSError as e:
            raise FormatError(root, f"cannot list folder ({e.strerror or first_line(e)})") from None
        for e in entries:
            if e.name.startswith(".") or not e.is_dir():
                continue
            if _inside(real_root, os.path.realpath(e)):   # e.g. up -> .. : the class would hold the dataset
                _warn(f"not following folder link {e} -> {os.path.realpath(e)} (it holds {root})")
                continue
            folders.append(e.name)
        if not folders and flat:   # unlabeled images straight in the folder: one class
            paths, odd = scan_images(root, recursive=False)
            if not paths:
                raise FormatError(root, "no images found (expected image files or class folders)")
            samples = [(p, 0) for p in paths if not os.path.basename(p).startswith(".")]
            self._init(root, samples, ["unlabeled"], transform, strict, odd)
            return
        if not folders:
            raise FormatError(root, "no class folders found (expected one folder of images per class)")
        if wanted is not None:
            index = {c: i for i, c in enumerate(wanted)}
            unknown = [f for f in folders if f not in index]
            if unknown:
                more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
                raise SqueezeNetError(f"{root}: folder {unknown[0]!r}{more} is not a class of the model's "
                                      f"class list ({len(wanted)} classes); check --classes")
            mapping = {f: index[f] for f in folders}
        else:
            wanted = folders
            mapping = {f: i for i, f in enumerate(folders)}
        samples, odd = [], {}
        for f in sorted(mapping):
            paths, bad = scan_images(root / f)
            samples += [(p, mapping[f]) for p in paths]
            odd.update(bad)
        if not samples:
            raise FormatError(root, "no images found in the class folders")
        self._init(root, samples, wanted, transform, strict, odd)
        self.folders = sorted(mapping)   # the class folders present (a class list may name more)

    def _init(self, root: Path, samples: list[tuple[str, int]], classes, transform, strict,
              odd: dict[str, str]) -> None:
        self.root = root
        self.samples: list[tuple[str, int]] = samples
        self.targets = [t for _, t in self.samples]
        self.classes: list[str] = list(classes)
        self.transform = transform
        self.strict = strict
        self.skipped: dict[str, str] = {}
        for path, reason in odd.items():   # image-named FIFOs, devices...: never opened
            if strict:
                raise UnreadableImage(path, reason)
            self.record_skipped(path, reason)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, target = self.samples[i]
        try:
            img = read_image(path)   # bounded, regular files only; a full decode
        except UnreadableImage as e:
            if self.strict:
                raise
            return Skipped(path, e.reason)
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def record_skipped(self, path: str, reason: str) -> None:
        """Count a bad image, warning once (one line naming it)."""
        if path not in self.skipped:
            self.skipped[path] = reason
            sys.stderr.write(f"squeezenet: warning: skipped unreadable image {path} ({reason})\n")


class DigitsDataset(Dataset):
    """scikit-learn's 8x8 handwritten digits (1,797 images, bundled offline), upscaled to 32x32 RGB.

    Fixed split: a stratified 80/20 split with seed 0 (1,437 train / 360 test).

    >>> ds = DigitsDataset("test")
    >>> len(ds), ds.classes[:3]
    (360, ['0', '1', '2'])
    """

    classes = [str(i) for i in range(10)]

    def __init__(self, split: str = "train", transform: Callable | None = None) -> None:
        import numpy as np
        from PIL import Image
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        if split not in SPLITS:
            raise SqueezeNetError(f"split {split!r}: must be one of {', '.join(SPLITS)}")
        d = load_digits()
        idx = np.arange(len(d.target))
        tr, te = train_test_split(idx, test_size=0.2, random_state=0, stratify=d.target)
        sel = np.sort(tr if split == "train" else te)
        pix = (d.images[sel] * (255.0 / 16.0)).round().clip(0, 255).astype("uint8")
        self.images = [Image.fromarray(p, mode="L").resize((32, 32), Image.BILINEAR).convert("RGB")
                       for p in pix]
        self.targets = [int(t) for t in d.target[sel]]
        self.transform = transform
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        img = self.images[i]
        return (self.transform(img) if self.transform else img), self.targets[i]


class PreloadedSmallDataset(Dataset):
    """A folder of small images (the ``small`` preset, 32x32) decoded once into one uint8
    array, cached as ``.npy`` in the cache folder, with the preset's augmentation done on
    tensors: CIFAR-10 epochs then cost no JPEG decoding (measured: decoding was a fifth of
    a squeezenet_small epoch on 2 cores).

    Same samples, targets, classes and augmentation (reflect-pad 4 + random 32 crop +
    horizontal flip, then CIFAR normalisation) as ``ImageFolderDataset`` with the ``small``
    preset. Built by :func:`build_dataset` only when every image decodes; otherwise the
    folder dataset (which skips and counts bad images) is used.
    """

    def __init__(self, folder: ImageFolderDataset, augment: bool, hflip: bool = True) -> None:
        self.root, self.samples, self.targets = folder.root, folder.samples, folder.targets
        self.classes, self.strict, self.skipped = folder.classes, folder.strict, dict(folder.skipped)
        self.augment, self.hflip = augment, hflip
        self.images = torch.from_numpy(_decode_small_cached(folder.samples))  # N x 3 x 32 x 32 uint8
        if augment:   # reflect-padded once (N x 3 x 40 x 40 uint8): a sample is then a crop view
            self.padded = torch.cat([torch.nn.functional.pad(c.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
                                     for c in self.images.split(4096)])
        small = PRESETS["small"]   # x 255: the images here are 0-255 uint8
        self._mean = torch.tensor(small.mean).view(3, 1, 1) * 255
        self._std = torch.tensor(small.std).view(3, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        if self.augment:
            dy, dx = torch.randint(0, 9, (2,)).tolist()   # crop of the 4-pixel reflect padding
            x = self.padded[i, :, dy:dy + 32, dx:dx + 32]
            if self.hflip and torch.rand(()) < 0.5:
                x = x.flip(-1)
        else:
            x = self.images[i]
        return (x.float() - self._mean) / self._std, self.targets[i]


def _decode_small_cached(samples: list[tuple[str, int]]):
    """uint8 array (N, 3, 32, 32) of the images, read from / written to the cache."""
    import hashlib

    import numpy as np
    from PIL import Image

    from ..io import atomic_write
    from .archive import cache_dir, cache_write_failed, writable_cache_dir
    h = hashlib.sha256()
    for path, _ in samples:
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    entry = cache_dir() / f"small32-{h.hexdigest()[:16]}.npy"
    if entry.is_file():
        try:
            arr = np.load(entry, allow_pickle=False, mmap_mode=None)
            if arr.shape == (len(samples), 3, 32, 32) and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass   # a damaged cache entry is rebuilt
    arr = np.empty((len(samples), 3, 32, 32), dtype=np.uint8)
    for i, (path, _) in enumerate(samples):
        img = read_image(path)   # FormatError: the caller falls back to the skipping folder dataset
        if img.size != (32, 32):
            img = img.resize((32, 32), Image.BILINEAR)
        arr[i] = np.asarray(img).transpose(2, 0, 1)
    if writable_cache_dir() is None:   # warned once; decoding again next time is the cost
        return arr

    def write(tmp):   # a file object: np.save would append ".npy" to a path
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
    try:
        atomic_write(entry, write)
    except OSError as e:   # a full disk, ...: the cache is only an optimisation
        cache_write_failed(entry, e)
    return arr


def _resolve_folder(path: Path, split: str) -> Path:
    """The class-folder root for ``split`` inside ``path`` (a folder or an archive); archives
    inside archives are followed at most :data:`~squeezenet.data.archive.MAX_NESTED_ARCHIVES`
    deep."""
    given = path
    for _ in range(MAX_NESTED_ARCHIVES + 1):
        if is_archive(path):
            path = content_root(unpack(path))
        if not path.is_dir():
            raise FormatError(path, "no such folder or archive (expected digits, cifar10, a folder of "
                                    "class folders, or a .tar.gz of them)")
        if (path / f"{split}").is_dir():
            return content_root(path / split)
        inner = next((path / f"{split}{suf}" for suf in (".tar.gz", ".tgz", ".tar")
                      if (path / f"{split}{suf}").is_file()), None)
        if inner is None:
            break
        path = inner
    else:
        raise FormatError(given, f"archives nested over {MAX_NESTED_ARCHIVES} deep (the next: {path.name}); "
                                 f"refusing to unpack further")
    if any((path / n).exists() for n in ("data_batch_1", "test_batch", "batches.meta")):
        raise SqueezeNetError(
            f"{path}: this is torchvision's pickled CIFAR-10 (cifar-10-batches-py); it is not read "
            f"because unpickling a file can run code. Use the JPEG folders (cifar10, "
            f"../shared/data/cifar10) or export the images into class folders")
    return path


def build_dataset(spec: str | os.PathLike, split: str = "train", preset: str | None = None,
                  classes=None, strict: bool = False, augment: bool | None = None,
                  transform: Callable | None = None, preload: bool = True,
                  unlabeled: bool = False, train_size: int | None = None) -> Dataset:
    """A dataset from a spec: ``"digits"``, ``"cifar10"``, a folder of class folders (or one
    holding ``train/`` and ``test/``), or a ``.tar.gz`` of such folders (unpacked into the cache).

    ``preset`` picks the preprocessing (default: :func:`preset_for` the data: ``small`` for
    digits and cifar10, else ``torchvision``); ``augment`` (default: ``split == "train"``) adds
    training augmentation. ``classes`` (a list or a class-list file) fixes the class-index order. With the ``small``
    preset the images are decoded once into memory (:class:`PreloadedSmallDataset`, cached);
    ``preload=False`` keeps per-image decoding. ``unlabeled=True`` also accepts a folder of
    images without class folders (labels are then all 0). ``train_size``: the side of the
    training crops (see :func:`get_transform`; folders with a ``resized`` preset only).

    >>> ds = build_dataset("digits", "test")
    >>> len(ds), ds[0][0].shape
    (360, torch.Size([3, 32, 32]))
    """
    if split not in SPLITS:
        raise SqueezeNetError(f"split {split!r}: must be one of {', '.join(SPLITS)}")
    augment = (split == "train") if augment is None else augment
    spec_s = str(spec)
    if spec_s == "digits":
        preset = check_preset(preset or preset_for(data=spec_s))
        if transform is None and augment and preset == "small":
            # centred, size-normalised digits: small affine warps (4-pixel crops slow learning)
            transform = digits_train_transform()
        tf = transform or get_transform(preset, train=augment, hflip=False)
        ds = DigitsDataset(split, tf)
        want = as_class_list(classes)
        if want is not None and want != DigitsDataset.classes:
            raise SqueezeNetError(f"digits has classes 0-9; the class list given has {len(want)} entries "
                                  f"starting {want[:3]}")
        return ds
    if spec_s == "cifar10":
        root = shared_dir() / "data" / "cifar10"
        if not root.is_dir():
            raise FormatError(root, f"CIFAR-10 folder not found ({shared_dir_hint()})")
        path = root
    else:
        path = Path(spec_s).expanduser()
        if not path.exists():
            raise FormatError(path, "no such dataset (expected digits, cifar10, a folder of class "
                                    "folders, or a .tar.gz of them)")
    preset = check_preset(preset or preset_for(data=spec_s))
    folder = _resolve_folder(path, split)
    tf = transform or get_transform(preset, train=augment, train_size=train_size)
    ds = ImageFolderDataset(folder, tf, classes=classes, strict=strict, flat=unlabeled)
    if preset == "small" and transform is None and preload:
        try:
            return PreloadedSmallDataset(ds, augment)
        except FormatError:   # an unreadable image: the folder dataset skips and counts it
            if strict:
                raise
    return ds


def build_unlabeled(specs, preset: str | None = None, augment: bool | None = None,
                    transform: Callable | None = None) -> Dataset:
    """Unlabeled images (labels unused) from one or more sources (each a folder, with or without
    class folders, or a ``.tar.gz``; their ``train`` split where they have one).

    One source gives :func:`build_dataset`'s dataset as it is. Several give one dataset whose
    images are interleaved: source by source in turn and, within a source, class folder by class
    folder in turn, so any evenly spread or leading part of it (the held-out choosing images,
    calibration batches) draws on every source and every class folder alike, and a source with
    many images of few classes cannot crowd out the others. No image is repeated or dropped.
    ``dataset.sources`` lists ``(source, images, class folders)``; ``source_of(i)`` names the
    source of item ``i``.

    >>> ds = build_unlabeled(["digits"])
    >>> len(ds), ds.sources
    (1437, [('digits', 1437, 10)])
    """
    specs = [str(s) for s in ([specs] if isinstance(specs, (str, os.PathLike)) else specs)]
    if not specs:
        raise SqueezeNetError("no unlabeled image source given")
    if len(set(specs)) != len(specs):
        dup = next(s for s in specs if specs.count(s) > 1)
        raise SqueezeNetError(f"unlabeled source {dup} is given twice")
    # several sources are combined as one folder dataset (decoded per image, not preloaded)
    parts = [build_dataset(s, "train", preset=preset, augment=augment, transform=transform, unlabeled=True,
                           preload=len(specs) == 1) for s in specs]
    if len(parts) == 1:
        ds = parts[0]
        ds.sources = [(specs[0], len(ds), _class_folders(ds))]
        ds.source_of = lambda i: specs[0]
        return ds
    for spec, ds in zip(specs, parts):
        if type(ds) is not ImageFolderDataset:
            raise SqueezeNetError(f"unlabeled source {spec}: only folders of images and .tar.gz archives "
                                  f"can be combined with other sources")
    # per source: its class folders' images taken in turn; then the sources taken in turn
    queues = []
    for ds in parts:
        by_class: dict[int, list[str]] = {}
        for path, t in ds.samples:
            by_class.setdefault(t, []).append(path)
        queues.append(_round_robin(list(by_class.values())))
    order = _round_robin(queues, tagged=True)
    combined = copy.copy(parts[0])
    combined.samples = [(path, 0) for _, path in order]
    combined.targets = [0] * len(order)
    combined.classes = ["unlabeled"]
    combined.skipped = {}
    for ds in parts:
        combined.skipped.update(ds.skipped)
    combined.root = Path(specs[0])
    src = [k for k, _ in order]
    combined.sources = [(spec, len(ds), _class_folders(ds)) for spec, ds in zip(specs, parts)]
    combined.source_of = lambda i: specs[src[i]]
    return combined


def _class_folders(ds) -> int:
    """How many class folders a dataset's images came from (0: images straight in one folder)."""
    if hasattr(ds, "folders"):
        return len(ds.folders)
    return 0 if getattr(ds, "classes", None) == ["unlabeled"] else len(getattr(ds, "classes", None) or [])


def _round_robin(lists: list[list], tagged: bool = False) -> list:
    """Items of ``lists`` taken one from each in turn until all are used (``tagged``: as
    ``(list index, item)``)."""
    out, i = [], 0
    while True:
        took = False
        for k, lst in enumerate(lists):
            if i < len(lst):
                out.append((k, lst[i]) if tagged else lst[i])
                took = True
        if not took:
            return out
        i += 1


def class_folder_names(spec: str | os.PathLike, split: str = "test") -> list[str]:
    """The class names of a dataset spec's ``split`` as found on disk: digits' ``0``-``9``, else
    the sorted class-folder names (an archive is unpacked into the cache first)."""
    spec_s = str(spec)
    if spec_s == "digits":
        return list(DigitsDataset.classes)
    path = shared_dir() / "data" / "cifar10" if spec_s == "cifar10" else Path(spec_s).expanduser()
    if not path.exists():
        return []
    folder = _resolve_folder(path, split)
    return sorted(e.name for e in folder.iterdir() if e.is_dir() and not e.name.startswith("."))


def dataset_label(spec: str | os.PathLike, split: str) -> str:
    """How to name what was scored: ``cifar10/test``, ``data/test`` for a folder or archive with a
    ``test`` split, else the folder itself (it is used whole)."""
    spec_s = str(spec)
    if spec_s in BUILTIN or is_archive(spec_s):
        return f"{spec_s.rstrip('/')}/{split}"
    p = Path(spec_s).expanduser()
    if p.is_dir() and any((p / f"{split}{suf}").exists() for suf in ("", ".tar.gz", ".tgz", ".tar")):
        return f"{spec_s.rstrip('/')}/{split}"
    return spec_s


def spread_indices(n: int, count: int | None = None) -> list[int]:
    """``count`` indices spread evenly over ``range(n)`` (deterministic; all if None or more).

    >>> spread_indices(10, 4)
    [0, 2, 5, 7]
    """
    if count is None or count >= n:
        return list(range(n))
    return [int(k * n / count) for k in range(count)]


def subset(ds: Dataset, indices: Sequence[int]) -> Dataset:
    """The items ``indices`` of ``ds``, keeping its ``classes`` (and ``targets``, when it has them)."""
    from torch.utils.data import Subset
    sub = Subset(ds, list(indices))
    sub.classes = getattr(ds, "classes", None)
    targets = getattr(ds, "targets", None)
    if targets is not None:
        sub.targets = [targets[i] for i in sub.indices]
    return sub


def hold_out(targets: Sequence[int], fraction: float) -> tuple[list[int], list[int]]:
    """Split the items of a dataset with labels ``targets`` into (kept, held out): of each
    class, ``round(fraction * its count)`` items spread evenly over it (the same share of every
    class, whatever the order of the items), deterministic.

    >>> hold_out([0, 1, 0, 1, 0, 1, 0, 1], 0.25)
    ([2, 3, 4, 5, 6, 7], [0, 1])
    """
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    held = sorted(items[j] for items in by_class.values()
                  for j in spread_indices(len(items), round(fraction * len(items)))) if fraction > 0 else []
    out = set(held)
    return [i for i in range(len(targets)) if i not in out], held


def spread_subset(ds: Dataset, count: int | None) -> Dataset:
    """``count`` items spread evenly over ``ds`` (deterministic; all of it when None or more).

    >>> len(spread_subset(build_dataset("digits", "test"), 10))
    10
    """
    n = len(ds)
    if count is None or count >= n:
        return ds
    from torch.utils.data import Subset
    sub = Subset(ds, spread_indices(n, count))
    sub.classes = getattr(ds, "classes", None)
    return sub


def index_classes(names: Sequence[str]) -> list[str] | None:
    """When every class folder is named by a model output index (``0``, ``7``, ``12``), the class
    list that sends each folder to that index (other slots keep their index as name); else None.

    >>> index_classes(["0", "1", "10", "2"])[:3], index_classes(["cat", "dog"])
    (['0', '1', '2'], None)
    """
    if not names or not all(n.isdigit() for n in names):
        return None
    idx = [int(n) for n in names]
    if len(set(idx)) != len(idx) or max(idx) > 100_000:
        return None
    out = [str(i) for i in range(max(idx) + 1)]
    for n, i in zip(names, idx):
        out[i] = n
    return out


def classes_for_scoring(spec: str | os.PathLike, split: str, classes, model: str = "the model") -> list[str] | str:
    """The class list that matches the labels of ``spec`` to a model's outputs: ``classes`` (the
    model's own or ``--classes``), else, when the class folders are named by output index, that
    mapping. Otherwise the answer would be a silent 0 %: a one-line error asks for ``--classes``.
    """
    if classes is not None:
        return classes
    names = class_folder_names(spec, split)
    by_index = index_classes(names)
    if by_index is not None or not names:
        return by_index
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise SqueezeNetError(f"{model} has no class list, so its outputs cannot be matched to the class folders "
                          f"of {spec} ({shown}); give --classes FILE (the class ids in the model's output "
                          f"order, e.g. synsets.txt)")


# ---------------------------------------------------------------------------------- loading

@dataclass(frozen=True)
class Replaced:
    """A readable sample standing in for the unreadable ones before it (``skipped``: their
    ``(path, reason)``), so that a batch keeps its size; see :class:`ReplaceUnreadable`."""

    sample: Any
    skipped: tuple


class ReplaceUnreadable(Dataset):
    """``dataset`` with every unreadable image replaced by the next readable sample (index
    ``i + 1``, ``i + 2``, ... wrapping around), instead of being dropped from its batch.

    Distributed training uses it: each rank's batch then keeps the same shape whatever images
    that rank meets, so no rank runs fewer or smaller steps than the others. The replaced images
    are still recorded on the dataset (one warning line each, counted in ``skipped``) by
    :class:`Loader`, through :func:`collate_skipping`. A dataset without one readable image is a
    one-line :class:`~squeezenet.errors.FormatError`.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        n = len(self.dataset)
        bad = []
        for k in range(n):
            item = self.dataset[(i + k) % n]
            if not isinstance(item, Skipped):
                return Replaced(item, tuple(bad)) if bad else item
            bad.append((item.path, item.reason))
        raise FormatError(getattr(base_dataset(self.dataset), "root", "the training data"),
                          f"none of its {n} images is readable")


class _Batch(list):
    """[images, targets] plus the paths of samples dropped from this batch (crosses workers)."""

    skipped: tuple = ()


def collate_skipping(samples: Sequence[Any]):
    """Collate ``samples``, leaving out :class:`Skipped` markers and unwrapping
    :class:`Replaced` samples; ``batch.skipped`` lists every unreadable image met."""
    from torch.utils.data import default_collate
    good, bad = [], []
    for s in samples:
        if isinstance(s, Skipped):
            bad.append((s.path, s.reason))
        elif isinstance(s, Replaced):
            good.append(s.sample)
            bad.extend(s.skipped)
        else:
            good.append(s)
    batch = _Batch(default_collate(good)) if good else _Batch()
    batch.skipped = tuple(bad)
    return batch


def base_dataset(ds) -> Dataset:
    """Unwrap Subset-like wrappers down to the dataset that records skipped files."""
    while not hasattr(ds, "record_skipped") and hasattr(ds, "dataset"):
        ds = ds.dataset
    return ds


def check_training_split(ds, where: str | os.PathLike) -> None:
    """Refuse a training split that cannot train a classifier, in one line naming the folder:
    a class folder without images, or fewer than two classes with images. Classes a
    ``--classes`` list names but the data has no folder for are allowed (training on part of
    a larger class list).
    """
    base = base_dataset(ds)
    targets = getattr(ds, "targets", getattr(base, "targets", None))     # a subset's own, else the whole's
    classes = list(getattr(ds, "classes", None) or getattr(base, "classes", None) or [])
    if targets is None or not classes:
        return
    counts = [0] * len(classes)
    for t in targets:
        counts[t] += 1
    folders = set(getattr(base, "folders", classes))
    empty = [c for c, n in zip(classes, counts) if n == 0 and c in folders]
    root = getattr(base, "root", where)
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise FormatError(root, f"class folder {empty[0]!r}{more} holds no images; add photos or remove the folder")
    filled = [c for c, n in zip(classes, counts) if n]
    if len(filled) < 2:
        shown = f" ({filled[0]!r})" if filled else ""
        raise FormatError(root, f"{len(filled)} class{'' if len(filled) == 1 else 'es'} with images{shown}; "
                                f"training a classifier needs at least 2 (one folder of photos per class)")


class Loader(DataLoader):
    """A DataLoader whose batches are ``(images, targets)`` with unreadable images dropped
    (recorded on the dataset, one warning each); batches left empty are skipped."""

    def __iter__(self):
        owner = base_dataset(self.dataset)
        for batch in super().__iter__():
            for path, reason in getattr(batch, "skipped", ()):
                if hasattr(owner, "record_skipped"):
                    owner.record_skipped(path, reason)
            if len(batch) == 0:
                continue
            yield batch[0], batch[1]


def make_loader(ds: Dataset, batch_size: int, shuffle: bool = False, workers: int = 0,
                sampler=None, drop_last: bool = False, seed: int | None = None) -> Loader:
    """A :class:`Loader` over ``ds``; ``seed`` makes shuffling reproducible.

    >>> xs, ys = next(iter(make_loader(build_dataset("digits", "test"), 8)))
    >>> xs.shape, ys.shape
    (torch.Size([8, 3, 32, 32]), torch.Size([8]))
    """
    gen = None
    if seed is not None:
        gen = torch.Generator()
        gen.manual_seed(seed)
    return Loader(ds, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                  sampler=sampler, num_workers=workers, collate_fn=collate_skipping,
                  drop_last=drop_last, generator=gen, persistent_workers=workers > 0)
