"""Preprocessing presets: how pixels become the tensors a model was trained on.

:data:`PRESETS` is the one table of them (one :class:`Preset` row each); everything else that
needs a preset's numbers (the ONNX metadata, the image readers, the preloaded 32x32 data)
reads them from here.

``torchvision``: RGB, /255, ImageNet mean/std, resize 256, centre crop 224 (torchvision's
copies of SqueezeNet and the ONNX-zoo weights).
``caffe``: BGR, 0-255, mean 104/117/123 subtracted, resize 256, centre crop 227 (the
DeepScale and Deep-Compression Caffe files, paper section 7).
``small``: 32x32 RGB, per-channel CIFAR-10 normalisation; for training the usual augmentation
(random crop with 4-pixel padding, horizontal flip).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """One preprocessing preset, as data.

    A PIL image is converted to RGB, resized (``resize``: the short side, or ``(h, w)``),
    centre-cropped to ``input_size`` (for training: ``augment`` picks the random crop), then
    its 0-255 pixels are multiplied by ``scale``, put in ``color`` channel order, and
    normalised: ``(x - mean) / std`` per channel.
    """

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float                    # multiplies the 0-255 pixel values first
    color: str                      # channel order of the tensor: "RGB" or "BGR"
    input_size: int                 # side of the square the model sees
    resize: int | tuple[int, int]   # short side before the crop, or both sides (h, w)
    augment: str                    # training crop: "resized" (RandomResizedCrop), "crop"
                                    # (resize + random crop), "pad" (resize + 4-pixel reflect pad + crop)

    def spec(self) -> dict[str, Any]:
        """The preset spelled out as plain JSON for consumers outside Python (ONNX metadata).

        >>> PRESETS["caffe"].spec()["mean"], PRESETS["small"].spec()["resize"]
        ([104.0, 117.0, 123.0], [32, 32])
        """
        return {"color": self.color, "scale": self.scale, "mean": list(self.mean), "std": list(self.std),
                "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
                "crop": self.input_size, "layout": "NCHW"}


#: The presets, by name: the one place their numbers are written.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("torchvision", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255, color="RGB",
           input_size=224, resize=256, augment="resized"),
    Preset("caffe", mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), scale=1.0, color="BGR",
           input_size=227, resize=256, augment="crop"),
    # resize both sides to 32 (no aspect-preserving crop), CIFAR-10 statistics
    Preset("small", mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), scale=1 / 255, color="RGB",
           input_size=32, resize=(32, 32), augment="pad"),
)}
#: Input side per preset.
INPUT_SIZE = {name: p.input_size for name, p in PRESETS.items()}


class PixelsToTensor:
    """PIL RGB image -> float tensor the way ``preset`` says: 0-255 x scale, channel order,
    per-channel mean and std (e.g. Caffe's BGR, 0-255, mean subtracted)."""

    def __init__(self, preset: Preset) -> None:
        self.preset = preset

    def __call__(self, img) -> torch.Tensor:
        from torchvision.transforms.functional import pil_to_tensor
        p = self.preset
        x = pil_to_tensor(_rgb(img)).float()
        if p.color == "BGR":
            x = x[[2, 1, 0]]
        if p.scale != 1.0:
            x = x * p.scale
        x = x - torch.tensor(p.mean).view(3, 1, 1)
        if any(s != 1.0 for s in p.std):
            x = x / torch.tensor(p.std).view(3, 1, 1)
        return x

    def __repr__(self) -> str:
        p = self.preset
        return f"PixelsToTensor({p.color}, x{p.scale:g}, mean={p.mean}, std={p.std})"


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        import difflib
        close = difflib.get_close_matches(str(preset), list(PRESETS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown preprocessing preset {preset!r} (known: {', '.join(PRESETS)}){hint}")
    return preset


def choose_preset(stored: str | None, requested: str | None, source=None, force: bool = False,
                  warn: Callable[[str], None] | None = None) -> str | None:
    """The preset to run a model with: the one place that decides when ``--preprocess``
    (``requested``) and the preset stored in the model file (``stored``) disagree.

    A file's stored preset is what its weights were trained with; another one scores a wrong
    figure without a word (``caffe`` on a ``torchvision`` model: 32 % instead of 63 %), so a
    contradiction is refused (one line naming both) unless ``force`` (``--force-preprocess``),
    which runs ``requested`` and tells ``warn`` which ran. A file without a preset takes
    ``requested``; no ``requested`` keeps ``stored``.

    >>> choose_preset("torchvision", None), choose_preset(None, "caffe"), choose_preset("small", "small")
    ('torchvision', 'caffe', 'small')
    >>> choose_preset("torchvision", "caffe", "m.safetensors")
    Traceback (most recent call last):
    squeezenet.errors.FormatError: m.safetensors: stores the preprocessing preset 'torchvision', but --preprocess caffe was given; drop --preprocess, or add --force-preprocess to run caffe anyway
    >>> choose_preset("torchvision", "caffe", "m.safetensors", force=True, warn=print)
    --force-preprocess: running preset caffe, not m.safetensors's stored torchvision
    'caffe'
    """
    from ..errors import FormatError
    if requested:
        check_preset(requested)
    if not requested or not stored or requested == stored:
        return requested or stored
    where = source if source is not None else "the model"
    if not force:
        msg = (f"stores the preprocessing preset {stored!r}, but --preprocess {requested} was given; drop "
               f"--preprocess, or add --force-preprocess to run {requested} anyway")
        raise FormatError(where, msg) if source is not None else ConfigError(f"the model {msg}")
    if warn is not None:
        warn(f"--force-preprocess: running preset {requested}, not {where}'s stored {stored}")
    return requested


def check_model_input(model, preset: str, source=None) -> None:
    """A one-line error (naming ``source``, the model's file) when ``model``'s config cannot
    take ``preset``'s input: its stem or pooling would shrink it to nothing
    (:meth:`squeezenet.models.SqueezeNetConfig.output_side`)."""
    from ..errors import FormatError, first_line
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "output_side"):
        return
    size = PRESETS[check_preset(preset)].input_size
    try:
        config.output_side(size)
    except ConfigError as e:
        msg = first_line(e)
        msg = f"the {preset} preset's {msg[2:]}" if msg.startswith("a ") else msg
        if source is None:
            raise ConfigError(msg) from None
        raise FormatError(source, msg) from None


def train_crop(preset: str, train_size: int | None) -> int | None:
    """The side of the training crops a ``train_size`` really gives under ``preset``: only
    ``resized`` presets (random-resized crops of photos) crop at another size, and only
    smaller than the preset's input (it saves compute; a larger crop would train at a scale
    the model is never scored at); ``None``: the preset's own training transform.

    >>> train_crop("torchvision", 160), train_crop("torchvision", 512), train_crop("small", 160)
    (160, None, None)
    """
    p = PRESETS[check_preset(preset)]
    return train_size if train_size and p.augment == "resized" and train_size < p.input_size else None


def get_transform(preset: str, train: bool = False, hflip: bool = True, train_size: int | None = None) -> Callable:
    """The PIL-image -> tensor transform of a preset, for training or evaluation.

    ``hflip=False`` drops the horizontal flip from the training augmentation (digits must not
    be mirrored). ``train_size`` (training only, ``resized`` presets, :func:`train_crop`): the
    side of the random crops, smaller than the preset's input for cheaper fine-tuning steps (the
    all-convolutional SqueezeNet is still scored at the preset's size).

    >>> from PIL import Image
    >>> get_transform("caffe")(Image.new("RGB", (300, 400))).shape
    torch.Size([3, 227, 227])
    >>> get_transform("small", train=True)(Image.new("RGB", (32, 32))).shape
    torch.Size([3, 32, 32])
    >>> get_transform("torchvision", train=True, train_size=160)(Image.new("RGB", (300, 400))).shape
    torch.Size([3, 160, 160])
    """
    from torchvision import transforms as T
    p = PRESETS[check_preset(preset)]
    size = p.input_size
    if train:
        if p.augment == "resized":
            geo = [T.RandomResizedCrop(train_crop(preset, train_size) or size)]
        elif p.augment == "pad":
            geo = [T.Resize(p.resize), T.RandomCrop(size, padding=4, padding_mode="reflect")]
        else:
            # Caffe's data layer: resized 256x256 images, random 227 crops + mirror for training.
            geo = [T.Resize(p.resize), T.RandomCrop(size)]
        geo += [T.RandomHorizontalFlip()] if hflip else []
    else:
        geo = [T.Resize(p.resize)] + ([] if p.resize == (size, size) else [T.CenterCrop(size)])
    if p.color == "RGB" and p.scale == 1 / 255:
        tensor = [T.ToTensor(), T.Normalize(p.mean, p.std)]
    else:
        tensor = [PixelsToTensor(p)]
    return T.Compose([T.Lambda(_rgb), *geo, *tensor])


#: Distillation crops for the mixed compression path: side and area range of the random crop.
#: A fully convolutional network trains on 128 px crops about 3x faster on a CPU than on 224
#: (measured on SqueezeNet 1.1 with ImageNet20's 160 px photos, same accuracy after 300 steps).
DISTILL_CROP = 128
DISTILL_SCALE = (0.35, 1.0)


def distill_transform(preset: str, size: int = DISTILL_CROP, scale: tuple = DISTILL_SCALE) -> Callable:
    """Training augmentation for distillation: a random-resized crop of ``size`` px (area in
    ``scale``) and a flip, with ``preset``'s tensor conversion; presets without resized crops
    (``small``, ``caffe``) get their usual training transform.

    >>> from PIL import Image
    >>> distill_transform("torchvision")(Image.new("RGB", (160, 200))).shape
    torch.Size([3, 128, 128])
    """
    from torchvision import transforms as T
    p = PRESETS[check_preset(preset)]
    if p.augment != "resized":
        return get_transform(preset, train=True)
    if p.color == "RGB" and p.scale == 1 / 255:
        tensor = [T.ToTensor(), T.Normalize(p.mean, p.std)]
    else:
        tensor = [PixelsToTensor(p)]
    return T.Compose([T.Lambda(_rgb), T.RandomResizedCrop(size, scale=scale, antialias=True),
                      T.RandomHorizontalFlip(), *tensor])


def digits_train_transform() -> Callable:
    """Training augmentation for the 32x32 digits: small rotations, shifts and scalings (the
    digits are centred and size-normalised: 4-pixel crops slowed learning), then the ``small``
    preset's tensor conversion and normalisation.

    >>> from PIL import Image
    >>> digits_train_transform()(Image.new("RGB", (32, 32))).shape
    torch.Size([3, 32, 32])
    """
    from torchvision import transforms as T
    p = PRESETS["small"]
    return T.Compose([T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1)),
                      T.ToTensor(), T.Normalize(p.mean, p.std)])


def _rgb(img):   # high bit depths scaled, not clipped: the one conversion is images.to_rgb
    from .images import to_rgb
    return img if img.mode == "RGB" else to_rgb(img)
