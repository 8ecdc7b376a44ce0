"""The ``cpu`` budget on two CPU cores: reduced MobileNetV2 variants, full CIFAR-10, a wall-clock budget.

Trains variants of the reduced MobileNetV2 of the chapter "MobileNetV2 on CIFAR-10" on all 50,000
training images within ``--minutes`` of training time (default 10) and reports the accuracy on
the full 10,000-image test set.  Target: vanilla test accuracy >= 75 % within the budget.

The model and the recipe are *not* defined here: ``mnf.recipes.CPU_MODEL`` / ``CPU_RECIPE`` and
the variants (``mnf.recipes.VARIANTS`` for experiment ``mobilenet_cpu10``, ``ABLATIONS`` for
``mobilenet_ablation``) are the ones the chapters use.  Only the number of epochs is chosen here:
a short probe measures images/s on real augmented batches and the run gets as many whole epochs
as fit into ``--safety`` (default 90 %) of the budget; the cosine schedule then anneals to zero at
the end of the last one.  When not even one epoch fits (``--minutes 0.5``: a smoke test), one
epoch runs on a stratified subset sized to the budget.

With ``--record`` every run is stored as ``mnf/results/<experiment>/<variant>-seed<k>.json``
(``mnf.results``: the command that reproduces it, commit, date, machine, history, final numbers),
which the chapter "Multiplier-free MobileNetV2" renders; the final weights go to
``runs/weights/<experiment>/`` (not committed), where distillation runs find their teacher.

    MNF_DATA=/path/with/cifar-10-batches-py python benchmarks/bench_cpu_budget.py
    python benchmarks/bench_cpu_budget.py --minutes 0.5                   # smoke test
    python benchmarks/bench_cpu_budget.py --variants vanilla,last_wht,pw_wht,adder --seeds 0,1 --record

Run it on a quiet machine: the budget is wall-clock time, so other processes on the same cores
make the result meaningless.  ``--threads`` (default 2) sets ``torch.set_num_threads``.
"""
from __future__ import annotations

import argparse
import math
import shlex
import statistics
import time
from pathlib import Path

import mnf  # noqa: F401  first: the thread pools' spin policy before torch loads (mnf.runtime)
import torch
import torch.nn.functional as F

from mnf import results
from mnf.recipes import ABLATIONS, CPU_MODEL, CPU_RECIPE, VARIANTS

EXPERIMENTS = {"mobilenet_cpu10": VARIANTS, "mobilenet_ablation": ABLATIONS}
WEIGHTS = Path(__file__).resolve().parents[1] / "runs" / "weights"
TARGET = 0.75
WARMUP = 4  # untimed probe steps


def probe(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe: dict,
          steps: int, teacher: torch.nn.Module | None = None) -> float:
    """Images/s of forward + backward + SGD step on augmented batches: the batch size over the
    median time of ``steps`` steps (after ``WARMUP`` untimed ones: oneDNN builds its kernels for
    each new shape during the first steps, which run several times slower, and the next few are
    still erratic; the median ignores them where a mean over so few steps would not).

    Runs on a copy of the weights' state, which it restores, so the probe does not train the model.
    With a ``teacher`` its forward pass is part of every step, as in distillation.
    """
    from mnf.data import batches
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cl = recipe.get("channels_last", False)
    if cl:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    bs = recipe["batch_size"]
    n = bs * (steps + WARMUP)
    generator = torch.Generator().manual_seed(1)
    times, tic = [], time.perf_counter()
    for i, (x, y) in enumerate(batches(images[:n], labels[:n], bs, augment=True, generator=generator,
                                       drop_last=True)):
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y)
        if teacher is not None:   # eager mode: the forward pass runs, its result is not needed
            with torch.no_grad():
                teacher(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        toc = time.perf_counter()
        if i >= WARMUP:
            times.append(toc - tic)
        tic = toc
    model.load_state_dict(state)
    return bs / statistics.median(times)


def teacher_for(name: str | None, model_kwargs: dict, weights: Path) -> torch.nn.Module | None:
    """The recorded weights of variant ``name`` of ``mobilenet_cpu10``, seed 0 (``None`` for no teacher):
    one teacher for every student seed."""
    if name is None:
        return None
    from mnf.models import mobilenet_v2
    path = weights / "mobilenet_cpu10" / f"{name}-seed0.pt"
    if not path.is_file():
        raise SystemExit(f"no teacher weights at {path}: run --experiment mobilenet_cpu10 --variants {name} "
                         "--seeds 0 --record first")
    teacher = mobilenet_v2(**model_kwargs, **VARIANTS[name]["model"])
    teacher.load_state_dict(torch.load(path, weights_only=True))
    return teacher.eval()


def run(experiment: str, name: str, seed: int, data, model_kwargs: dict, recipe: dict, args) -> dict:
    from mnf.data import stratified_subset
    from mnf.models import mobilenet_v2
    from mnf.train import fit

    spec = EXPERIMENTS[experiment][name]
    torch.manual_seed(seed)
    model = mobilenet_v2(**model_kwargs, **spec["model"])
    teacher = teacher_for(spec.get("teacher"), model_kwargs, Path(args.weights))
    params = sum(p.numel() for p in model.parameters())
    # the probe only sizes the epochs: fixed --epochs skip it
    speed = math.nan if args.epochs else probe(model, data.train_images, data.train_labels, recipe,
                                               args.probe_steps, teacher)
    budget_s = args.minutes * 60
    n_train = len(data.train_images)
    epochs = args.epochs or math.floor(args.safety * budget_s * speed / n_train)
    train = (data.train_images, data.train_labels)
    if epochs < 1:  # not even one epoch fits: one epoch on a subset sized to the budget
        per_class = max(recipe["batch_size"] // 10 + 1, int(args.safety * budget_s * speed / 10))
        train = stratified_subset(*train, min(per_class, n_train // 10), seed=seed)
        epochs = 1
    sizing = f"fixed at {epochs} epoch(s)" if args.epochs else f"probe {speed:.0f} images/s -> {epochs} epoch(s)"
    print(f"[{name} seed {seed}] {params:,} parameters; {sizing} on {len(train[0]):,} images"
          + ("" if args.epochs else f" (budget {args.minutes:g} min)"), flush=True)
    fit_kwargs = {k: v for k, v in recipe.items() if k != "epochs"} | spec["fit"]
    commit, dirty = results.git_state()
    eval_every = min(args.eval_every, epochs) if args.eval_every else epochs
    history = fit(model, (*train, data.test_images, data.test_labels), epochs=epochs, eval_every=eval_every,
                  seed=seed, progress=not args.quiet, teacher=teacher, **fit_kwargs)
    train_s = sum(history["time"])
    acc = history["test_acc"][-1]
    out = dict(variant=name, seed=seed, params=params, probe_images_per_s=speed, epochs=epochs,
               train_images=len(train[0]), train_s=train_s,
               images_per_s=sum(r["images_per_s"] * r["time"] for r in history.rows) / train_s,
               test_acc=acc)
    if args.record:
        weights = Path(args.weights) / experiment
        weights.mkdir(parents=True, exist_ok=True)
        tmp = weights / f"{name}-seed{seed}.pt.tmp"
        torch.save(model.state_dict(), tmp)
        tmp.replace(weights / f"{name}-seed{seed}.pt")
        command = ["python", "benchmarks/bench_cpu_budget.py", "--experiment", experiment, "--variants", name,
                   "--seeds", str(seed), "--eval-every", str(args.eval_every), "--threads", str(args.threads),
                   "--record"] + (["--epochs", str(args.epochs)] if args.epochs else ["--minutes", f"{args.minutes:g}"])
        path = results.write(dict(
            experiment=experiment, variant=name, seed=seed,
            budget=dict(minutes=None if args.epochs else args.minutes, epochs=args.epochs or None,
                        threads=args.threads, safety=args.safety,
                        probe_images_per_s=None if args.epochs else round(speed, 1), full_data=len(train[0]) == n_train),
            command=shlex.join(command), commit=commit, dirty=dirty, date=results.now(), machine=results.machine(),
            params=params, config=dict(model=model_kwargs | spec["model"], fit=fit_kwargs | dict(epochs=epochs),
                                       teacher=spec.get("teacher")),
            history=history.rows,
            final=dict(test_acc=acc, train_time_s=train_s, images_per_s=out["images_per_s"], epochs=epochs)))
        print(f"recorded {path}", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training-time budget per model (default 10)")
    p.add_argument("--experiment", default="mobilenet_cpu10", choices=sorted(EXPERIMENTS),
                   help="which table of variants (mnf.recipes.VARIANTS or ABLATIONS)")
    p.add_argument("--variants", default="vanilla",
                   help="comma-separated names of the experiment's variants, or 'all' (default: vanilla)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--record", action="store_true", help="store each run in mnf/results/<experiment>/")
    p.add_argument("--eval-every", type=int, default=2, help="test-set evaluation every this many epochs")
    p.add_argument("--weights", default=str(WEIGHTS), help=f"where --record keeps final weights (default {WEIGHTS})")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--epochs", type=int, default=0, help="fix the epochs instead of sizing them to the budget")
    p.add_argument("--safety", type=float, default=0.9, help="share of the budget the epochs are sized to")
    p.add_argument("--probe-steps", type=int, default=16, help="timed steps of the speed probe")
    p.add_argument("--data", default=None, help="directory holding cifar-10-batches-py (default: $MNF_DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args()
    table = EXPERIMENTS[args.experiment]
    names = list(table) if args.variants == "all" else [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in table]
    if unknown:
        p.error(f"unknown variant(s) {unknown} of {args.experiment}; valid: {', '.join(table)}")
    try:
        seeds = [int(k) for k in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated ints, got {args.seeds!r}")
    if any(k < 0 for k in seeds) or args.eval_every < 0 or args.minutes <= 0:
        p.error("--seeds and --eval-every must be >= 0 and --minutes > 0")

    from mnf.data import load_cifar10
    torch.set_num_threads(args.threads)
    model_kwargs, recipe = dict(CPU_MODEL), dict(CPU_RECIPE)
    print(f"recipe from mnf.recipes:\n  CPU_MODEL  = {model_kwargs}\n  CPU_RECIPE = {recipe}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    data = load_cifar10(args.data)
    runs = [run(args.experiment, name, seed, data, model_kwargs, recipe, args) for name in names for seed in seeds]

    budget_s = args.minutes * 60
    print(f"\n{'variant':<22}{'seed':>5}{'params':>11}{'images/s':>10}{'epochs':>8}{'train images':>14}"
          f"{'train time':>12}{'test acc':>10}")
    for r in runs:
        print(f"{r['variant']:<22}{r['seed']:>5}{r['params']:>11,}{r['images_per_s']:>10.0f}{r['epochs']:>8}"
              f"{r['train_images']:>14,}{r['train_s'] / 60:>10.2f} m{100 * r['test_acc']:>9.2f}%")
    vanilla = next((r for r in runs if r["variant"] == "vanilla"), None)
    if vanilla is None:
        return 0
    ok = vanilla["test_acc"] >= TARGET and vanilla["train_s"] <= budget_s
    print(f"\nvanilla: {100 * vanilla['test_acc']:.2f}% on the 10,000 test images after "
          f"{vanilla['train_s'] / 60:.2f} min of training (target >= {100 * TARGET:.0f}% within "
          f"{args.minutes:g} min): {'PASS' if ok else 'FAIL'}")
    if args.minutes < 10:
        print("(a budget under 10 minutes is a smoke test; the target is meant for --minutes 10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
