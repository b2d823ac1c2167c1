"""Compression under torchrun: two gloo processes on the CPU write the file one process writes
(DDP retraining, centroid tuning and distillation, each process a share of every batch; the
evaluation and choosing passes sharded and summed)."""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch

import squeezenet
from squeezenet.compress.pipeline import CompressConfig, compress_model
from squeezenet.data import make_loader
from squeezenet.models import SqueezeNet, SqueezeNetConfig

#: the uniform path (retraining under masks, centroid tuning) and the mixed path (knapsack,
#: rounding, straight-through distillation, chosen on held-out unlabeled images)
CONFIGS = {
    "uniform": dict(prune="uniform:0.5", bits=4, max_steps=3, batch_size=16, calibration_images=0, lr=1e-2),
    "mixed": dict(target_size=6_000, calibration_images=32, choose_images=20, distill_steps=3, distill_lr=1e-3,
                  batch_size=16),
}


def _model():
    torch.manual_seed(0)   # no dropout: its masks are drawn per process
    return SqueezeNet(SqueezeNetConfig(stem="small", fires=((8, 16, 16), (8, 16, 16)), pool_after=(0,),
                                       num_classes=4, dropout=0.0)).eval()


def _data():
    g = torch.Generator().manual_seed(1)
    def images(n, labels):
        return torch.utils.data.TensorDataset(torch.randn(n, 3, 16, 16, generator=g), labels(n))
    train = images(64, lambda n: torch.randint(0, 4, (n,), generator=g))
    val = images(48, lambda n: torch.randint(0, 4, (n,), generator=g))
    unl = images(120, lambda n: torch.zeros(n, dtype=torch.long))
    return train, val, unl


def _compress(out_dir, name: str) -> dict:
    train, val, unl = _data()
    kw = dict(CONFIGS[name], progress=False)
    mixed = name == "mixed"
    report = compress_model(_model(), None if mixed else train, make_loader(val, 16), CompressConfig(**kw),
                            os.path.join(out_dir, f"{name}.sqz"), unlabeled=unl if mixed else None,
                            log=lambda *a: None)
    return {"top1": [r.get("top1") for r in report["rows"]], "stages": [r["stage"] for r in report["rows"]]}


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from squeezenet.train import distributed as D
    try:
        reports = {name: _compress(out_dir, name) for name in CONFIGS}
        assert D.active() and torch.distributed.get_world_size() == world
        if rank == 0:
            with open(os.path.join(out_dir, "reports.json"), "w") as f:
                json.dump(reports, f)
    finally:
        D.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_write_the_file_one_process_writes(tmp_path, one_thread):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    single = {name: _compress(str(one), name) for name in CONFIGS}
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(two)), nprocs=2, join=True)
    multi = json.loads((two / "reports.json").read_text())
    for name in CONFIGS:
        a, b = squeezenet.load(one / f"{name}.sqz"), squeezenet.load(two / f"{name}.sqz")
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sb[k], sa[k], atol=1e-5, rtol=1e-4, msg=lambda m: f"{name} {k}: {m}")
        assert multi[name]["stages"] == single[name]["stages"]
        assert multi[name]["top1"] == pytest.approx(single[name]["top1"], abs=1e-9)   # sharded, summed
    assert single["uniform"]["stages"] == ["dense", "pruned", "quantized", "centroids tuned", "huffman (.sqz)"]
    assert "distilled" in single["mixed"]["stages"]
