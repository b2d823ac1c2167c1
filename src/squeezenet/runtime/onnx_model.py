"""An exported ``.onnx`` file (fp32 or int8) as a model ``eval``, ``predict`` and ``bench`` can run.

``squeezenet export`` writes the preprocessing preset, class list (and names) and config into
the file's ``metadata_props`` (:mod:`squeezenet.interop.onnx_export`); :func:`load_onnx`
reads them back and runs the graph with ONNX Runtime's CPU provider, after
:func:`check_onnx_graph` has checked it (operators, tensor sizes, finite weights, one input
and one output) so that a foreign file can neither hang nor exhaust memory. A file without that
metadata needs the preset from the caller (``--preprocess``) and, to name or score classes,
a class list (``--classes``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import FormatError, SqueezeNetError, first_line
from ..models.data_config import CarriesDataConfig, DataConfig

SUFFIXES = (".onnx",)


def is_onnx_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


class OnnxModel(CarriesDataConfig):
    """A callable ``x (N, C, H, W float tensor) -> logits tensor`` over an ONNX Runtime session,
    with the attributes a SqueezeNet model carries (``classes``, ``class_names``,
    ``preprocess``, ``num_classes``, ``config`` when known, ``metadata``).

    ``engine`` is always ``onnxruntime``; ``int8`` says whether the graph is quantized.
    """

    engine = "onnxruntime"

    def __init__(self, path: str | os.PathLike, session, metadata: dict[str, Any], preprocess: str,
                 classes: list[str] | None, class_names: list[str] | None, config, num_classes: int | None,
                 input_name: str, input_shape: tuple, int8: bool, data_config: DataConfig | None = None) -> None:
        self.path, self.session, self.metadata = Path(path), session, metadata
        self.data_config = data_config or DataConfig()   # classes, class_names, preprocess read through it
        self.preprocess, self.classes, self.config = preprocess, classes, config
        self.class_names = class_names if class_names and classes and len(class_names) == len(classes) else None
        self.num_classes, self.input_name, self.input_shape, self.int8 = num_classes, input_name, input_shape, int8

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        try:
            out = self.session.run(None, {self.input_name: a})[0]
        except Exception as e:  # ORT's own errors (wrong input size, ...) as one line
            raise SqueezeNetError(f"{self.path}: ONNX Runtime could not run a batch of shape {tuple(a.shape)} "
                                  f"({first_line(e, 200)})") from None
        return torch.from_numpy(out)

    def eval(self) -> "OnnxModel":   # the nn.Module habit; an ONNX graph has no training mode
        return self

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, preprocess={self.preprocess!r}, int8={self.int8})"


def load_onnx(path: str | os.PathLike, preprocess: str | None = None, classes=None,
              threads: int | None = None, need_preprocess: bool = True) -> OnnxModel:
    """Open an ONNX file for inference with the preprocessing and classes of its metadata.

    ``preprocess`` and ``classes`` (a list or a class-list file) override the metadata and
    are required where it is missing: a file not written by ``squeezenet export`` without
    ``preprocess`` is a one-line :class:`~squeezenet.errors.FormatError` saying so (unless
    ``need_preprocess=False``: timing needs no images).

    >>> import squeezenet, tempfile, os, torch
    >>> from squeezenet.interop.onnx_export import export_onnx
    >>> m = squeezenet.create_model("squeezenet_small"); m.preprocess = "small"
    >>> p = export_onnx(m, os.path.join(tempfile.mkdtemp(), "m.onnx"))
    >>> o = load_onnx(p)
    >>> o.preprocess, o.num_classes, tuple(o(torch.zeros(2, 3, 32, 32)).shape)
    ('small', 10, (2, 10))
    """
    import onnx

    from ..interop.onnx_export import read_onnx_metadata
    from .engines import ort_session
    from .exported_model import model_facts
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "no such file")
    meta = read_onnx_metadata(path)
    ours = meta.get("format") == "squeezenet"
    facts = model_facts(path, meta, preprocess, classes, need_preprocess,
                        no_preset="its squeezenet metadata has no preprocessing preset" if ours else
                        "it has no squeezenet metadata (not written by 'squeezenet export')")
    preset, classes, names, config = facts["preprocess"], facts["classes"], facts["class_names"], facts["config"]
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise FormatError(path, f"not a readable ONNX file ({first_line(e, 200)})") from None
    check_onnx_graph(proto, path)        # before ONNX Runtime sees the file
    try:
        session = ort_session(str(path), threads)
    except Exception as e:
        raise FormatError(path, f"ONNX Runtime cannot open it ({first_line(e, 200)})") from None
    inp = session.get_inputs()[0]
    out = session.get_outputs()[0]
    if out.shape is not None and len(out.shape) != 2:
        raise FormatError(path, f"its output {out.name!r} has rank {len(out.shape)} (shape {out.shape}); "
                                f"an image classifier's output is (N, classes)")
    n_out = out.shape[1] if out.shape is not None and isinstance(out.shape[1], int) else None
    if config is not None and n_out is not None and config.num_classes != n_out:
        config = None   # metadata that does not describe this graph
    num_classes = config.num_classes if config is not None else n_out
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise SqueezeNetError(f"{path}: {len(classes)} classes in the class list, the model has {num_classes} outputs")
    int8 = any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in proto.graph.node)
    shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
    return OnnxModel(path, session, meta, preset, classes, names, config, num_classes, inp.name, shape, int8,
                     data_config=facts["data_config"])


#: Operators of an exported image classifier (fp32 or int8 QDQ/QOperator, ours or another
#: exporter's). No control flow (Loop, Scan, If: a graph that never ends), nothing that allocates
#: from a value in the graph (ConstantOfShape, Expand, Tile, Range, Resize, Pad), no custom domain.
CLASSIFIER_OPS = frozenset("""
    Conv ConvInteger QLinearConv Gemm MatMul MatMulInteger QLinearMatMul BatchNormalization
    InstanceNormalization LayerNormalization LRN Relu LeakyRelu PRelu Clip Sigmoid HardSigmoid HardSwish Tanh
    Elu Selu Erf Gelu Softplus Mish Add Sub Mul Div Sum Max Min Mean Sqrt Pow Exp Log Neg Abs Reciprocal
    MaxPool AveragePool GlobalAveragePool GlobalMaxPool ReduceMean ReduceMax ReduceSum Concat Flatten
    Reshape Squeeze Unsqueeze Transpose Identity Dropout Softmax LogSoftmax Shape Gather Slice Split Cast
    Constant QuantizeLinear DequantizeLinear DynamicQuantizeLinear ArgMax
""".split())
#: ONNX Runtime's own contrib operators of a QOperator-format int8 classifier (domain com.microsoft).
MS_CLASSIFIER_OPS = frozenset("""
    QLinearAdd QLinearMul QLinearConcat QLinearGlobalAveragePool QLinearAveragePool QLinearSigmoid
    QLinearLeakyRelu QLinearSoftmax FusedConv FusedGemm
""".split())
#: The most bytes one initializer (or Constant) may declare, and all of them together.
MAX_TENSOR_BYTES = 1 << 30
MAX_TOTAL_BYTES = 1 << 31
MAX_NODES = 100_000


def check_onnx_graph(proto, path) -> None:
    """Refuse, with one line naming ``path``, an ONNX model an image classifier cannot be:
    operators outside :data:`CLASSIFIER_OPS` (and ONNX Runtime's int8 :data:`MS_CLASSIFIER_OPS`)
    or of another domain, local functions, sparse or
    external initializers, a tensor whose declared dims ask for more than
    :data:`MAX_TENSOR_BYTES` (computed from the dims, nothing allocated), NaN or infinite
    weights, a quantization scale that is not positive, more than
    :data:`MAX_NODES` nodes, or not one image input and one output. Runs on the parsed
    protobuf before ONNX Runtime loads the file, so no graph of it ever runs unchecked.

    >>> from onnx import TensorProto, helper
    >>> w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 32])   # 16 GiB declared, 0 held
    >>> g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    >>> check_onnx_graph(helper.make_model(g), "m.onnx")
    Traceback (most recent call last):
    ...
    squeezenet.errors.FormatError: m.onnx: initializer 'w' declares 4,294,967,296 float elements (17,179,869,184 bytes), over the 1,073,741,824-byte limit
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    g = proto.graph
    if proto.functions:
        raise FormatError(path, f"defines {len(proto.functions)} local function(s) "
                                f"({proto.functions[0].name!r}); an exported image classifier has none")
    if len(g.node) > MAX_NODES:
        raise FormatError(path, f"{len(g.node):,} nodes, over the {MAX_NODES:,} limit")
    for n in g.node:
        ok = (n.op_type in CLASSIFIER_OPS if n.domain in ("", "ai.onnx") else
              n.domain == "com.microsoft" and n.op_type in MS_CLASSIFIER_OPS)
        if not ok:
            op = f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
            raise FormatError(path, f"operator {op} (node {n.name!r}) is not one an exported image classifier "
                                    f"uses; refused before running (allowed: Conv, Relu, MaxPool, Concat, ...)")
    if g.sparse_initializer:
        raise FormatError(path, "holds sparse initializers; an exported image classifier has none")
    tensors = [("initializer", t) for t in g.initializer]
    tensors += [("Constant", a.t) for n in g.node if n.op_type == "Constant" for a in n.attribute if a.HasField("t")]
    total = 0
    for what, t in tensors:
        if t.data_location == TensorProto.EXTERNAL or t.external_data:
            raise FormatError(path, f"{what} {t.name!r} keeps its data in another file; refused")
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except Exception:
            raise FormatError(path, f"{what} {t.name!r} has unknown element type {t.data_type}") from None
        if any(d < 0 for d in t.dims):
            raise FormatError(path, f"{what} {t.name!r} has a negative dimension {list(t.dims)}")
        count = 1
        for d in t.dims:
            count *= int(d)
        nbytes = count * itemsize
        if nbytes > MAX_TENSOR_BYTES:
            kind = helper.tensor_dtype_to_np_dtype(t.data_type)
            raise FormatError(path, f"{what} {t.name!r} declares {count:,} {np.dtype(kind).name.replace('float32', 'float')} "
                                    f"elements ({nbytes:,} bytes), over the {MAX_TENSOR_BYTES:,}-byte limit")
        total += nbytes
    if total > MAX_TOTAL_BYTES:
        raise FormatError(path, f"its tensors declare {total:,} bytes in all, over the {MAX_TOTAL_BYTES:,}-byte limit")
    scales = {n.input[1] for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 1}
    for what, t in tensors:   # sizes checked above: reading the values is bounded
        if t.data_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
            continue
        try:
            a = numpy_helper.to_array(t)
        except Exception as e:
            raise FormatError(path, f"{what} {t.name!r} cannot be read ({first_line(e, 120)})") from None
        if not np.isfinite(a).all():   # a NaN weight or int8 scale: every output would be wrong
            raise FormatError(path, f"{what} {t.name!r} holds NaN or infinite values")
        if t.name in scales and not (a > 0).all():
            raise FormatError(path, f"quantization scale {t.name!r} is not positive")
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise FormatError(path, f"{len(inputs)} input(s) and {len(g.output)} output(s); an image classifier "
                                f"has one image input and one output")
