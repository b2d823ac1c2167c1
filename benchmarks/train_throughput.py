"""Training throughput per device: our Trainer vs a minimal hand-written PyTorch loop, same run.

Both train torchvision's ``squeezenet1_1`` (the same module object layout, fresh copies with
identical weights) on the same in-memory random batch stream, same batch size, input size and
thread count; SGD momentum 0.9, no accumulation. The Trainer also runs with channels_last, and
with channels_last + bfloat16 autocast (AMP). Each device given (default: cpu, and cuda when
there is one) is measured alike; the batches start on the CPU in both loops (copied per step).
Prints JSON: images/s of each loop on each device and the ratios trainer / hand-written loop
on that device.

    python benchmarks/train_throughput.py --batch-size 32 --input-size 224 --steps 20 --threads 1
    python benchmarks/train_throughput.py --devices cpu,cuda --batch-size 128 --steps 50
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch.utils.data import Dataset


class RandomImages(Dataset):
    """Pre-made tensors, so data loading costs the same (almost nothing) in both loops."""

    def __init__(self, n: int, size: int, classes: int = 1000) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.y = torch.randint(0, classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def handwritten(model, data: RandomImages, batch: int, steps: int, warmup: int,
                device: torch.device = torch.device("cpu")) -> float:
    from torch.utils.data import DataLoader
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=2e-4)
    model.train()
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, pin_memory=device.type == "cuda")
    it = iter(loader)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


class _Timer:
    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.steps = warmup, None, 0

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.warmup:
            _sync(trainer.device)
            self.t0 = time.perf_counter()
        self.steps = trainer.step

    def on_train_end(self, trainer) -> None:
        _sync(trainer.device)
        self.t1 = time.perf_counter()


def ours(model, data: RandomImages, batch: int, steps: int, warmup: int, channels_last: bool,
         device: str = "cpu", bf16: bool = False) -> float:
    import squeezenet.train as T
    cfg = T.TrainConfig(epochs=1, batch_size=batch, accum_steps=1, lr=0.001, max_steps=warmup + steps,
                        dropout=None, channels_last=channels_last, progress=False, checkpoint_minutes=1e9,
                        device=device, bf16=bf16)
    timer = _Timer(warmup)
    T.Trainer(model, cfg, data, callbacks=[timer]).fit()
    return steps * batch / (timer.t1 - timer.t0)


def measure(base, data, a, device: str) -> dict:
    """images/s of each loop on ``device`` (best of ``a.repeats`` interleaved runs)."""
    dev = torch.device(device)
    loops = {
        "handwritten": lambda: handwritten(copy.deepcopy(base), data, a.batch_size, a.steps, a.warmup, dev),
        "trainer": lambda: ours(copy.deepcopy(base), data, a.batch_size, a.steps, a.warmup, False, device),
        "trainer_channels_last": lambda: ours(copy.deepcopy(base), data, a.batch_size, a.steps, a.warmup, True,
                                              device),
        "trainer_channels_last_bf16": lambda: ours(copy.deepcopy(base), data, a.batch_size, a.steps, a.warmup,
                                                   True, device, bf16=True),
    }
    best = dict.fromkeys(loops, 0.0)
    for _ in range(a.repeats):  # interleaved, so load changes on a shared machine hit all alike
        for name, run in loops.items():
            best[name] = max(best[name], run())
    out = {"images_per_s": {k: round(v, 2) for k, v in best.items()}}
    for k in loops:
        if k != "handwritten":
            out[f"ratio_{k}_vs_handwritten"] = round(best[k] / best["handwritten"], 3)
    if dev.type == "cuda":
        out["name"] = torch.cuda.get_device_name(dev)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps per loop")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="alternate the loops this many times, keep the best")
    ap.add_argument("--devices", default=None,
                    help="comma-separated devices (cpu, cuda, cuda:N, mps); default cpu, and cuda when present")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from torchvision.models import squeezenet1_1

    from squeezenet.train import Trainer
    devices = a.devices.split(",") if a.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    from squeezenet.errors import SqueezeNetError
    try:
        devices = [str(Trainer.pick_device(d.strip())) for d in devices]
    except SqueezeNetError as e:     # an absent device: one line
        raise SystemExit(f"error: {e}") from None
    torch.manual_seed(0)
    base = squeezenet1_1()
    data = RandomImages(a.batch_size * (a.steps + a.warmup), a.input_size)
    print(json.dumps({
        "model": "torchvision squeezenet1_1", "batch_size": a.batch_size, "input_size": a.input_size,
        "threads": a.threads, "timed_steps": a.steps, "repeats": a.repeats,
        "devices": {d: measure(base, data, a, d) for d in devices},
    }, indent=2))


if __name__ == "__main__":
    main()
