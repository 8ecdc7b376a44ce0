"""Command line: ``python -m mnf {train,eval,data}``.

    python -m mnf data [--root DIR]                         # fetch / check CIFAR-10
    python -m mnf train --model mobilenet_v2 --width 0.5 --pointwise conv --epochs 10 \\
                        --budget ci|cpu|gpu --out DIR       # also under torchrun (DDP)
    python -m mnf eval --checkpoint DIR/checkpoint.pt

``--budget`` sets ``MNF_BUDGET`` and the defaults that follow from it: epochs (ci 1, cpu 10,
gpu 100) and the training subset per class (ci 50, else all); ``ci`` also tests on 20 per class.
"""
from __future__ import annotations

import argparse
import inspect
import os

from mnf.budget import BUDGETS, pick


def parser() -> argparse.ArgumentParser:
    from mnf.models import MODELS
    from mnf.models.policy import DEPTHWISE, LAST, POINTWISE
    from mnf.models.resnet import LAYERS
    from mnf.train import SCHEDULES

    p = argparse.ArgumentParser(prog="python -m mnf", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="download / check CIFAR-10")
    data.add_argument("--root", help="directory for cifar-10-batches-py (default $MNF_DATA or ~/.cache/mnf)")

    train = sub.add_parser("train", help="train a model on CIFAR-10")
    train.add_argument("--model", choices=list(MODELS), default="mobilenet_v2")
    train.add_argument("--layout", choices=("imagenet", "cifar"))
    train.add_argument("--width", type=float)
    train.add_argument("--num-classes", type=int)
    train.add_argument("--pointwise", choices=POINTWISE)
    train.add_argument("--depthwise", choices=DEPTHWISE)
    train.add_argument("--last", choices=LAST)
    train.add_argument("--layer", choices=LAYERS, help="resnet20 layers")
    train.add_argument("--blocks", help="blocks per stage: '1,2,3,4,3,3,1' (mobilenet_v2) or '3' (resnet20)")
    train.add_argument("--budget", choices=BUDGETS)
    train.add_argument("--epochs", type=int)
    train.add_argument("--per-class", type=int, help="train on this many images per class")
    train.add_argument("--test-per-class", type=int, help="test on this many images per class")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=0.1)
    train.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--channels-last", action="store_true")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--root", help="CIFAR-10 root")
    train.add_argument("--out", help="directory for history.json/csv and checkpoint.pt (resumes from it)")

    ev = sub.add_parser("eval", help="evaluate a checkpoint on the CIFAR-10 test set")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--root")
    ev.add_argument("--batch-size", type=int, default=500)
    return p


def model_kwargs(args: argparse.Namespace) -> dict:
    """The options the chosen model's factory accepts, as given on the command line."""
    from mnf.models import MODELS
    accepted = inspect.signature(MODELS[args.model]).parameters
    kwargs = {k: v for k, v in vars(args).items() if k in accepted and k != "blocks" and v is not None}
    if args.blocks:
        blocks = [int(b) for b in args.blocks.split(",")]
        kwargs["blocks"] = blocks[0] if args.model == "resnet20" else blocks
    return kwargs


def train(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from mnf.data import load_cifar10, stratified_subset
    from mnf.models import build
    from mnf.train import fit, setup_distributed

    if args.budget:
        os.environ["MNF_BUDGET"] = args.budget
    rank, world, device = setup_distributed()
    data = load_cifar10(args.root, download=rank == 0 or None)
    train_x, train_y, test_x, test_y = data.train_images, data.train_labels, data.test_images, data.test_labels
    per_class = args.per_class or pick(ci=50, cpu=None, gpu=None)
    test_per_class = args.test_per_class or pick(ci=20, cpu=None, gpu=None)
    if per_class:
        train_x, train_y = stratified_subset(train_x, train_y, per_class, seed=args.seed)
    if test_per_class:
        test_x, test_y = stratified_subset(test_x, test_y, test_per_class, seed=args.seed)
    model = build(args.model, **model_kwargs(args))
    epochs = args.epochs or pick(ci=1, cpu=10, gpu=100)
    try:
        history = fit(model, (train_x, train_y, test_x, test_y), epochs=epochs, batch_size=args.batch_size,
                      lr=args.lr, schedule=args.schedule, label_smoothing=args.label_smoothing, seed=args.seed,
                      device=device, channels_last=args.channels_last, out=args.out,
                      progress=not args.no_progress)
        if rank == 0 and len(history):
            last = history.rows[-1]
            print(f"epoch {last['epoch']}: train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}, "
                  f"{last['images_per_s']:.0f} images/s")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def evaluate_checkpoint(args: argparse.Namespace) -> None:
    import torch

    from mnf.data import load_cifar10
    from mnf.train import evaluate, load_checkpoint

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, ckpt = load_checkpoint(args.checkpoint, device)
    data = load_cifar10(args.root)
    result = evaluate(model, data.test_images, data.test_labels, batch_size=args.batch_size, device=device)
    print(f"{ckpt['arch']['name']} {ckpt['arch']['kwargs']} after {ckpt['epoch']} epochs")
    print(f"test loss {result.loss:.4f}  accuracy {result.accuracy:.4f}")
    print(f"{'class':>12} {'precision':>9} {'recall':>7} {'f1':>6}")
    for name, p, r, f in zip(data.classes, result.precision, result.recall, result.f1):
        print(f"{name:>12} {p:9.3f} {r:7.3f} {f:6.3f}")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "data":
        from mnf.data import default_root, load_cifar10
        data = load_cifar10(args.root, download=True)
        print(f"CIFAR-10 in {args.root or default_root()}: train {tuple(data.train_images.shape)}, "
              f"test {tuple(data.test_images.shape)}, classes {', '.join(data.classes)}")
    elif args.command == "train":
        train(args)
    else:
        evaluate_checkpoint(args)


if __name__ == "__main__":
    main()
