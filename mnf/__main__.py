"""Command line: ``python -m mnf {train,eval,data}``.

    python -m mnf data [--root DIR]                         # fetch / check CIFAR-10
    python -m mnf train --model mobilenet_v2 --width 0.5 --pointwise conv --epochs 10 \\
                        --budget ci|cpu|gpu --out DIR       # also under torchrun (DDP)
    python -m mnf eval --checkpoint DIR/checkpoint.pt

``--budget`` sets ``MNF_BUDGET`` and the defaults that follow from it: epochs (ci 1, cpu 10,
gpu 100) and the training subset per class (ci 50, else all); ``ci`` also tests on 20 per class.
Downloads follow ``MNF_DOWNLOAD`` (``0``: never; CIFAR-10 must then be on disk).

Bad arguments (``--epochs 0``, an option the chosen model does not take, ...) and user errors
(missing data, a bad checkpoint) print one line and exit with status 2 (arguments) or 1;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import inspect
import math
import os
import sys

from mnf.budget import BUDGETS, pick

MODEL_OPTIONS = ("layout", "width", "num_classes", "pointwise", "depthwise", "last", "conv3x3", "blocks")
CLASSIFIERS = ("mobilenet_v2", "resnet20")   # the builders of mnf.models that `train` offers


class Parser(argparse.ArgumentParser):
    """``argparse`` with one-line errors: ``prog: error: message (see prog --help)``, exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {value}")
        return value
    parse.__name__ = f"int >= {low}"
    return parse


def _real(low: float, high: float | None = None, low_open: bool = False):
    bounds = (f"in [{low:g}, {high:g}]" if high is not None else f"{'>' if low_open else '>='} {low:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {text!r}") from None
        if (not math.isfinite(value) or (value <= low if low_open else value < low)
                or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"expected a finite number {bounds}, got {text!r}")
        return value
    parse.__name__ = f"number {bounds}"
    return parse


def _blocks(text: str) -> list[int]:
    try:
        blocks = [int(b) for b in text.split(",")]
    except ValueError:
        blocks = []
    if not blocks or min(blocks) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints >= 1 such as '1,2,3,4,3,3,1' or '3', "
                                         f"got {text!r}")
    return blocks


def parser() -> argparse.ArgumentParser:
    from mnf.models.mobilenet_v2 import LAYOUTS
    from mnf.models.policy import ROLES
    from mnf.train import SCHEDULES

    p = Parser(prog="python -m mnf", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
        return c

    data = command("data", "download / check CIFAR-10")
    data.add_argument("--root", help="directory for cifar-10-batches-py (default $MNF_DATA or ~/.cache/mnf)")

    train = command("train", "train a model on CIFAR-10")
    train.add_argument("--model", choices=CLASSIFIERS, default="mobilenet_v2")
    train.add_argument("--layout", choices=LAYOUTS, help="mobilenet_v2 only")
    train.add_argument("--width", type=_real(0, low_open=True), help="mobilenet_v2 only")
    train.add_argument("--num-classes", type=_int_at_least(10), help="classifier outputs (>= 10 for CIFAR-10)")
    for role, kinds in ROLES["mobilenet_v2"].items():
        train.add_argument(f"--{role}", choices=kinds, help="mobilenet_v2 only")
    train.add_argument("--conv3x3", choices=ROLES["resnet20"]["conv3x3"], help="resnet20 only")
    train.add_argument("--blocks", type=_blocks,
                       help="blocks per stage: '1,2,3,4,3,3,1' (mobilenet_v2) or '3' (resnet20)")
    train.add_argument("--budget", choices=BUDGETS)
    train.add_argument("--epochs", type=_int_at_least(1))
    train.add_argument("--per-class", type=_int_at_least(1), help="train on this many images per class")
    train.add_argument("--test-per-class", type=_int_at_least(1), help="test on this many images per class")
    train.add_argument("--batch-size", type=_int_at_least(1), default=128)
    train.add_argument("--lr", type=_real(0), default=0.1)
    train.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    train.add_argument("--label-smoothing", type=_real(0, 1), default=0.0)
    train.add_argument("--seed", type=_int_at_least(0), default=0)
    train.add_argument("--channels-last", action="store_true")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--root", help="CIFAR-10 root")
    train.add_argument("--out", help="directory for history.json/csv and checkpoint.pt (resumes from it)")

    ev = command("eval", "evaluate a checkpoint on the CIFAR-10 test set")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--root")
    ev.add_argument("--batch-size", type=_int_at_least(1), default=500)
    p.commands = {"data": data, "train": train, "eval": ev}  # type: ignore[attr-defined]
    return p


def check_model_options(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """Refuse (``p.error``: one line, exit 2) options the chosen model's factory does not take
    and a ``--blocks`` of the wrong length, instead of ignoring them."""
    from mnf.models import MODELS
    from mnf.models.mobilenet_v2 import STAGES
    accepted = inspect.signature(MODELS[args.model]).parameters
    for name in MODEL_OPTIONS:
        if getattr(args, name) is not None and name not in accepted:
            p.error(f"--{name.replace('_', '-')} does not apply to --model {args.model}")
    want = 1 if args.model == "resnet20" else len(STAGES)
    if args.blocks is not None and len(args.blocks) != want:
        p.error(f"--blocks for {args.model} takes {want} number{'s' * (want > 1)}, got {len(args.blocks)}")


def model_kwargs(args: argparse.Namespace) -> dict:
    """The options the chosen model's factory accepts, as given on the command line."""
    from mnf.models import MODELS
    accepted = inspect.signature(MODELS[args.model]).parameters
    kwargs = {k: v for k, v in vars(args).items() if k in accepted and k != "blocks" and v is not None}
    if args.blocks:
        kwargs["blocks"] = args.blocks[0] if args.model == "resnet20" else args.blocks
    return kwargs


def train(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from mnf.data import load_cifar10, stratified_subset
    from mnf.models import build
    from mnf.train import fit, setup_distributed

    if args.budget:
        os.environ["MNF_BUDGET"] = args.budget
    rank, world, device = setup_distributed()
    data = load_cifar10(args.root)   # downloads unless MNF_DOWNLOAD=0
    train_x, train_y, test_x, test_y = data.train_images, data.train_labels, data.test_images, data.test_labels
    per_class = args.per_class if args.per_class is not None else pick(ci=50, cpu=None, gpu=None)
    test_per_class = args.test_per_class if args.test_per_class is not None else pick(ci=20, cpu=None, gpu=None)
    if per_class:
        train_x, train_y = stratified_subset(train_x, train_y, per_class, seed=args.seed)
    if test_per_class:
        test_x, test_y = stratified_subset(test_x, test_y, test_per_class, seed=args.seed)
    model = build(args.model, **model_kwargs(args))
    epochs = args.epochs if args.epochs is not None else pick(ci=1, cpu=10, gpu=100)
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


def run(args: argparse.Namespace) -> None:
    if args.command == "data":
        from mnf.data import default_root, load_cifar10
        data = load_cifar10(args.root)   # downloads unless MNF_DOWNLOAD=0
        print(f"CIFAR-10 in {args.root or default_root()}: train {tuple(data.train_images.shape)}, "
              f"test {tuple(data.test_images.shape)}, classes {', '.join(data.classes)}")
    elif args.command == "train":
        train(args)
    else:
        evaluate_checkpoint(args)


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command.

    Argument errors exit with status 2, user errors (``ValueError`` -- which the package's
    ``TypeError`` for a wrong argument type also is --, a missing or unreadable file, a failed
    download) print ``python -m mnf <command>: error: ...`` on one line and exit with status 1;
    with ``--debug`` they raise, with the traceback. Other exceptions are bugs and always raise.
    """
    from mnf.data import DownloadError
    p = parser()
    args = p.parse_args(argv)
    if args.command == "train":
        check_model_options(args, p.commands["train"])
    try:
        run(args)
    except (ValueError, OSError, DownloadError) as error:
        if args.debug:
            raise
        message = str(error).replace("\n", " ").strip() or type(error).__name__
        print(f"python -m mnf {args.command}: error: {message}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
