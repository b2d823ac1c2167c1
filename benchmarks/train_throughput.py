"""Training throughput: our Trainer vs a minimal hand-written PyTorch loop, same run.

Both train torchvision's ``squeezenet1_1`` (the same module object layout, fresh copies with
identical weights) on the same in-memory random batch stream, same batch size, input size and
thread count; SGD momentum 0.9, no accumulation. The Trainer also runs with channels_last.
Prints JSON: images/s of each and the ratios trainer / hand-written loop.

    python benchmarks/train_throughput.py --batch-size 32 --input-size 224 --steps 20 --threads 1
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


def handwritten(model, data: RandomImages, batch: int, steps: int, warmup: int) -> float:
    from torch.utils.data import DataLoader
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=2e-4)
    model.train()
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
    it = iter(loader)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        x, y = next(it)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


class _Timer:
    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.steps = warmup, None, 0

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.warmup:
            self.t0 = time.perf_counter()
        self.steps = trainer.step

    def on_train_end(self, trainer) -> None:
        self.t1 = time.perf_counter()


def ours(model, data: RandomImages, batch: int, steps: int, warmup: int, channels_last: bool) -> float:
    import squeezenet.train as T
    cfg = T.TrainConfig(epochs=1, batch_size=batch, accum_steps=1, lr=0.001, max_steps=warmup + steps,
                        dropout=None, channels_last=channels_last, progress=False, checkpoint_minutes=1e9)
    timer = _Timer(warmup)
    T.Trainer(model, cfg, data, callbacks=[timer]).fit()
    return steps * batch / (timer.t1 - timer.t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps per loop")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="alternate the loops this many times, keep the best")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from torchvision.models import squeezenet1_1
    torch.manual_seed(0)
    base = squeezenet1_1()
    data = RandomImages(a.batch_size * (a.steps + a.warmup), a.input_size)
    best = {"handwritten": 0.0, "trainer": 0.0, "trainer_channels_last": 0.0}
    for _ in range(a.repeats):  # interleaved, so load changes on a shared machine hit both alike
        best["handwritten"] = max(best["handwritten"], handwritten(copy.deepcopy(base), data, a.batch_size,
                                                                   a.steps, a.warmup))
        best["trainer"] = max(best["trainer"], ours(copy.deepcopy(base), data, a.batch_size, a.steps, a.warmup, False))
        best["trainer_channels_last"] = max(best["trainer_channels_last"],
                                            ours(copy.deepcopy(base), data, a.batch_size, a.steps, a.warmup, True))
    print(json.dumps({
        "model": "torchvision squeezenet1_1", "batch_size": a.batch_size, "input_size": a.input_size,
        "threads": a.threads, "timed_steps": a.steps, "repeats": a.repeats,
        "images_per_s": {k: round(v, 2) for k, v in best.items()},
        "ratio_trainer_vs_handwritten": round(best["trainer"] / best["handwritten"], 3),
        "ratio_trainer_channels_last_vs_handwritten": round(best["trainer_channels_last"] / best["handwritten"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
