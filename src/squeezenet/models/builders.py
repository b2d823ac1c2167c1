"""Registered builders: each named variant is a row of data, each builder two lines."""
from __future__ import annotations

from typing import Any

from .registry import register_model
from .squeezenet import V10_FIRES, MetaParams, SqueezeNet, SqueezeNetConfig
from .weights import load_torchvision_weights

#: name -> base config. v1.0 pools after fire4/fire8, v1.1 after fire3/fire5.
VARIANTS: dict[str, SqueezeNetConfig] = {
    "squeezenet1_0": SqueezeNetConfig(stem="v1.0", fires=V10_FIRES, pool_after=(2, 6)),
    "squeezenet1_1": SqueezeNetConfig(stem="v1.1", fires=V10_FIRES, pool_after=(1, 3)),
    "squeezenet1_0_caffe": SqueezeNetConfig(stem="v1.0", fires=V10_FIRES, pool_after=(2, 6),
                                            conv10_padding=1),
    # 32x32 inputs (CIFAR-10, digits): conv1 3x3/1 pad 1 (64 filters) keeps 32x32, then
    # v1.1's pooling (after conv1, fire3, fire5): 32 -> 16 -> 8 -> 4; conv10 sees 4x4.
    "squeezenet_small": SqueezeNetConfig(stem="small", fires=V10_FIRES, pool_after=(1, 3),
                                         num_classes=10),
}


def _variant(name: str, input_size: int, preset: str, description: str):
    """Register the builder of ``VARIANTS[name]``: its documented input side and preset."""
    return register_model(name, input_size=input_size, preset=preset, stem=VARIANTS[name].stem,
                          description=description)


def _build(name: str, weights: Any = None, progress: bool = True, meta: MetaParams | None = None,
           init: str = "paper", **kwargs) -> SqueezeNet:
    cfg = VARIANTS[name]
    if meta is not None:
        cfg = cfg.replace(fires=tuple(meta.fires()))
    model = SqueezeNet(cfg.replace(**kwargs), init=init)
    if weights is not None:
        load_torchvision_weights(model, name, weights, progress=progress)
    return model


@_variant("squeezenet1_0", 227, "torchvision", "SqueezeNet v1.0 (paper Table 1; 1,248,424 params)")
def squeezenet1_0(*, weights=None, progress=True, **kwargs) -> SqueezeNet:
    """SqueezeNet v1.0 exactly as published; torchvision-compatible state_dict."""
    return _build("squeezenet1_0", weights, progress, **kwargs)


@_variant("squeezenet1_1", 224, "torchvision", "SqueezeNet v1.1 (1,235,496 params, 2.4x less compute)")
def squeezenet1_1(*, weights=None, progress=True, **kwargs) -> SqueezeNet:
    """SqueezeNet v1.1; torchvision-compatible state_dict."""
    return _build("squeezenet1_1", weights, progress, **kwargs)


@_variant("squeezenet1_0_caffe", 227, "torchvision", "SqueezeNet v1.0, Caffe-exact (conv10 padding 1)")
def squeezenet1_0_caffe(*, weights=None, progress=True, **kwargs) -> SqueezeNet:
    """v1.0 as in the released Caffe files: conv10 has padding 1."""
    return _build("squeezenet1_0_caffe", weights, progress, **kwargs)


@_variant("squeezenet_small", 32, "small", "small-image SqueezeNet for 32x32 inputs (conv1 3x3/1, 64)")
def squeezenet_small(*, weights=None, progress=True, **kwargs) -> SqueezeNet:
    """SqueezeNet for 32x32 inputs: conv1 3x3 stride 1 with 64 filters, v1.1 pooling."""
    return _build("squeezenet_small", weights, progress, **kwargs)
