"""TEMPORARY stand-ins for squeezenet.data / squeezenet.train / squeezenet.evaluate (issue 3),
used only until those modules are merged into main. Delete this file then."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import torch
import torch.nn.functional as F


class _Tensors(torch.utils.data.TensorDataset):
    def __init__(self, x, y, classes):
        super().__init__(x, y)
        self.classes = classes


def build_dataset(spec, split="train", preset=None, classes=None, strict=False):
    if spec == "digits":
        from sklearn.datasets import load_digits
        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
        x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
        x = (x - 0.5) / 0.5
        y = torch.tensor(d.target)
        g = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(y), generator=g)
        cut = int(0.8 * len(y))
        idx = perm[:cut] if split == "train" else perm[cut:]
        return _Tensors(x[idx], y[idx], [str(i) for i in range(10)])
    if spec == "cifar10":
        import torchvision
        shared = Path(os.environ.get("SQUEEZENET_SHARED", Path(__file__).resolve().parents[4] / "shared"))
        cache = Path(os.environ.get("SQUEEZENET_CACHE", Path.home() / ".cache/squeezenet")) / "cifar10"
        if not (cache / split).is_dir():
            cache.mkdir(parents=True, exist_ok=True)
            with tarfile.open(shared / "data/cifar10" / f"{split}.tar.gz") as t:
                t.extractall(cache, filter="data")
        tf = torchvision.transforms.Compose([torchvision.transforms.ToTensor(),
                                             torchvision.transforms.Normalize([0.5] * 3, [0.5] * 3)])
        return torchvision.datasets.ImageFolder(cache / split, transform=tf)
    raise ValueError(f"fallback cannot load {spec!r}")


def make_loader(ds, batch_size, shuffle=False, workers=0):
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers)


def train(model, train_data, budget):
    g = torch.Generator().manual_seed(budget.seed)
    loader = torch.utils.data.DataLoader(train_data, batch_size=budget.batch_size, shuffle=True, generator=g)
    total = budget.max_steps or max(1, int(round(budget.epochs))) * len(loader)
    opt = torch.optim.Adam(model.parameters(), lr=budget.lr or 1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total))
    model.train()
    step = 0
    while step < total:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step >= total:
                break


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    right = n = 0
    for x, y in loader:
        right += (model(x).argmax(1) == y).sum().item()
        n += len(y)
    return {"top1": right / max(1, n)}
