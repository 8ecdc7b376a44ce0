"""Trainer overhead: images/s of ``mnf.train.fit`` vs a bare forward+backward+step loop.

Both train the same model (ResNet-20, CPU or CUDA) with the same SGD settings on the same
number of images; the bare loop gets pre-made, pre-normalised batches, ``fit`` shuffles,
augments and normalises on the fly and tracks metrics.  Target: ratio >= 0.85.  Best of
``--rounds`` alternating runs each, to be fair on a shared machine.

    python benchmarks/bench_trainer.py [--images 2048] [--batch-size 128] [--rounds 3]
"""
import argparse
import time

import mnf  # noqa: F401  first: the thread pools' spin policy before torch loads (mnf.runtime)
import torch
import torch.nn.functional as F

from mnf.data import normalize
from mnf.models import resnet20
from mnf.train import fit


def bare(images, labels, batch_size, device):
    torch.manual_seed(0)
    model = resnet20().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    xs = [normalize(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    ys = [labels[i:i + batch_size] for i in range(0, len(images), batch_size)]
    model.train()
    tic = time.perf_counter()
    for x, y in zip(xs, ys):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - tic)


def trainer(images, labels, batch_size, device):
    torch.manual_seed(0)
    data = (images, labels, images[:batch_size], labels[:batch_size])
    history = fit(resnet20(), data, epochs=1, batch_size=batch_size, lr=0.05, device=device, progress=True)
    return history["images_per_s"][-1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    labels = (torch.arange(args.images) % 10).to(device)
    trainer(images[:args.batch_size * 2], labels[:args.batch_size * 2], args.batch_size, device)  # warm-up
    best_bare = best_fit = 0.0
    for r in range(args.rounds):
        b = bare(images, labels, args.batch_size, device)
        f = trainer(images, labels, args.batch_size, device)
        best_bare, best_fit = max(best_bare, b), max(best_fit, f)
        print(f"round {r + 1}: bare {b:8.1f} images/s   fit {f:8.1f} images/s")
    ratio = best_fit / best_bare
    print(f"{device.type}: bare {best_bare:.1f} images/s, fit {best_fit:.1f} images/s, "
          f"ratio {ratio:.3f} (target >= 0.85): {'PASS' if ratio >= 0.85 else 'FAIL'}")


if __name__ == "__main__":
    main()
