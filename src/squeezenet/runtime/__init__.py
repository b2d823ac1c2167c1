"""Fast inference: one call turns a SqueezeNet into the fastest callable the CPU at hand allows.

``compile_model(model, engine)`` returns a :class:`CompiledModel`, a callable
``x (N, C, H, W float32 tensor) -> logits (N, classes) tensor`` whose outputs agree with
eager PyTorch (checked with ``torch.allclose(rtol=1e-5, atol=1e-4)``: logits of real
ImageNet weights reach ~300, where float32 spacing is 3e-5, so any kernel that reorders
sums differs from eager by a few units in the last place).

Engines:

* ``eager``: the model as is, under ``torch.inference_mode``.
* ``channels_last``: NHWC memory format (oneDNN's preferred layout on x86).
* ``torchscript``: traced, frozen, ``torch.jit.optimize_for_inference`` (conv+ReLU fusion).
* ``compile``: ``torch.compile`` (inductor); the first call compiles (a minute on a 2-core
  machine), inductor's on-disk cache makes later processes faster.
* ``onnxruntime``: exported to ONNX in memory, run by ONNX Runtime's CPU provider.
* ``openvino``: the same ONNX graph compiled by OpenVINO's CPU plugin in fp32 (optional:
  ``pip install 'squeezenet[openvino]'``).
* ``auto``: measures :data:`AUTO_CANDIDATES` once for this CPU, torch/ORT versions, model
  config, input shape and thread count, at batch 1 and 32, keeps the fastest whose outputs
  agree with eager at each (a call runs the pick of the nearest batch size), and caches the choice in ``$SQUEEZENET_CACHE/runtime_auto.json`` (default
  ``~/.cache/squeezenet``). ``compile`` is not a default candidate: its compile cost would
  be paid on every first use and it is slower than ONNX Runtime on the CPUs measured.

``compile_file(onnx_model)`` is ``auto`` for an exported ``.onnx`` file (fp32 or int8): ONNX
Runtime or OpenVINO (where installed) per batch size, whichever is faster and agrees.
"""
from ..data.archive import cache_dir
from .auto import AUTO_BATCHES, AUTO_CANDIDATES, CACHE_FILE, choose_engine, compile_file, compile_model, cpu_model
from .engines import ATOL, ENGINES, RTOL, CompiledModel, build_engine, input_shape, ort_session, time_callables

__all__ = ["compile_model", "compile_file", "AUTO_BATCHES", "CompiledModel", "ENGINES", "AUTO_CANDIDATES", "cache_dir",
           "cpu_model", "ort_session", "choose_engine", "build_engine", "input_shape", "time_callables",
           "RTOL", "ATOL", "CACHE_FILE"]
