"""Check mnf on a machine with a CUDA GPU (e.g. Colab T4): kernels, book, speed, training.

    make gpu-check                                   # set up, fetch CIFAR-10, then this script
    python tools/gpu_check.py [--quick] [--skip-tests] [--skip-book]

Run from a clone with the environment of ``make setup`` and CIFAR-10 under ``$MNF_DATA``. Steps:

1. tests: ``pytest tests/cuda`` without ``NUMBA_ENABLE_CUDASIM`` (every CUDA kernel and launcher
   against the CPU kernels, at real sizes on the GPU) and ``pytest -m gpu`` over the rest of the suite;
2. book: ``python tools/notebook.py smoke`` with ``MNF_BUDGET=gpu MNF_SMOKE=1`` (every chapter);
3. speed, side by side in this process: ``fwht`` vs ``x.clone()``, ``adder2d`` vs ``conv2d`` and
   ``WHTPointwise`` vs a 1x1 conv (forward+backward). Each repeat runs both back to back between
   CUDA events after a synchronize; reported: median ms and the median per-repeat ratio, after
   warm-up (Numba compilation excluded);
4. training: one epoch of each MobileNetV2 variant with ``mnf.train.fit`` (images/s as ``fit``
   reports it, compilation of the first steps included; PASS = finite loss).

Prints one line per check (name, measured, target, verdict), exits 1 if any check fails and 2
without a CUDA device. ``--quick``: smaller sizes and 4,000 training images.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as tf
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = "no CUDA device: gpu-check needs a GPU (e.g. Colab T4)"

# Speed targets (forward+backward where a layer is timed), as ratios of time to the reference's.
FWHT_OVER_CLONE = 4.0   # mnf.bench.fwht (bench_fwht.py): within 4x of x.clone() (the memory floor),
FWHT_BAR_MAX_N = 4096   # for n <= 4096 only; longer rows take ~log4(n) + 1 passes through memory
ADDER_OVER_CONV = 6.0   # mnf.bench.adder (bench_adder.py): within 6x of conv2d
# mnf.bench.wht_layers (bench_wht_layers.py) asks WHTPointwise to be 3x (C >= 256) / 5x (C = 1024)
# faster than the 1x1 conv on CPU. On a GPU the conv is one dense GEMM on thousands of cores while
# the CUDA path of WHTPointwise is unfused (pad, transform, threshold, inverse: several trips
# through memory), so the GPU bar is "at least as fast", for the same channel counts (none < 256).
WHT_OVER_CONV1X1 = 1.0
WHT_BAR_MIN_C = 256
FWHT_N = (256, 1024, 4096, 16384)
WARMUP = 3
VARIANTS = {  # mnf.models.mobilenet_v2 keyword arguments on top of mnf.recipes.GPU_MODEL
    "vanilla": {},
    "last=wht": dict(last="wht"),
    "pointwise=wht": dict(pointwise="wht"),
    "pointwise+depthwise=adder": dict(pointwise="adder", depthwise="adder"),
}


@dataclass
class Check:
    name: str
    measured: str
    target: str
    verdict: str  # PASS, FAIL, INFO (no target) or SKIP


def row(c: Check) -> str:
    measured = c.measured if len(c.measured) <= 56 else c.measured[:53] + "..."
    return f"{c.name:<44} {measured:<56} {c.target:<22} {c.verdict}"


def table(checks: list[Check]) -> str:
    head = row(Check("check", "measured", "target", "verdict"))
    return "\n".join([head, "-" * len(head), *map(row, checks)])


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.verdict == "FAIL" for c in checks) else 0


def ratio_verdict(ratio: float, limit: float | None) -> str:
    return "INFO" if limit is None else "PASS" if ratio <= limit else "FAIL"


def run_check(name: str, target: str, fn: Callable[[], tuple[str, str]]) -> Check:
    """``fn() -> (measured, verdict)``; an exception is a FAIL that names it (traceback above)."""
    try:
        measured, verdict = fn()
    except Exception as error:  # noqa: BLE001 - every failure becomes a row of the table
        traceback.print_exc()
        measured, verdict = f"{type(error).__name__}: {error}".replace("\n", " "), "FAIL"
    return report(Check(name, measured, target, verdict))


def report(check: Check) -> Check:
    print(row(check), flush=True)
    return check


def skipped(name: str, flag: str) -> Check:
    return report(Check(name, f"skipped ({flag})", "", "SKIP"))


def section(name: str, fn: Callable[[], list[Check]]) -> list[Check]:
    """``fn()``'s checks, or one FAIL row if setting the section up raised (an import, a CUDA error)."""
    try:
        return fn()
    except Exception as error:  # noqa: BLE001
        traceback.print_exc()
        return [report(Check(name, f"{type(error).__name__}: {error}", "runs", "FAIL"))]


# --------------------------------------------------------------------------- tests and book

def run_command(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``cmd`` in the repository root, echoing its output; (exit code, last output line)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    last = ""
    for line in proc.stdout:
        print(line, end="", flush=True)
        last = line.strip(" =\n") or last
    return proc.wait(), last


def suite_checks() -> list[Check]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}  # the real GPU
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]

    def cuda_tests() -> tuple[str, str]:
        rc, last = run_command(pytest + ["tests/cuda"], env)
        return last, "PASS" if rc == 0 else "FAIL"

    def gpu_marked() -> tuple[str, str]:
        rc, last = run_command(pytest + ["-m", "gpu", "--ignore=tests/cuda", "tests"], env)
        return (last, "PASS") if rc in (0, 5) else (last, "FAIL")  # 5: no test is marked gpu

    return [run_check("pytest tests/cuda (no simulator)", "all pass", cuda_tests),
            run_check("pytest -m gpu (rest of the suite)", "all pass", gpu_marked)]


def book_check() -> Check:
    def smoke() -> tuple[str, str]:
        env = {**os.environ, "MNF_BUDGET": "gpu", "MNF_SMOKE": "1"}
        rc, last = run_command([sys.executable, "tools/notebook.py", "smoke"], env)
        if rc == 2:
            return "exit 2 (usage: has tools/notebook.py a `smoke` command?)", "FAIL"
        return (last if rc == 0 else f"exit {rc}: {last}"), "PASS" if rc == 0 else "FAIL"

    return run_check("book: notebook.py smoke (budget gpu)", "every chapter runs", smoke)


# --------------------------------------------------------------------------- speed

def paired_ms(fn: Callable[[], object], ref: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Median ms of ``fn`` and of ``ref`` run back to back on the GPU, and the median of their ratio."""
    for _ in range(WARMUP):
        fn()
        ref()
    a, b = [], []
    for _ in range(repeats):
        start, mid, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        torch.cuda.synchronize()
        start.record()
        fn()
        mid.record()
        ref()
        end.record()
        torch.cuda.synchronize()
        a.append(start.elapsed_time(mid))
        b.append(mid.elapsed_time(end))
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b))


def speed_check(name: str, ref_name: str, limit: float | None, fn, ref, repeats: int) -> Check:
    target = "(no bar)" if limit is None else f"<= {limit:g}x {ref_name}"

    def measure() -> tuple[str, str]:
        ms, ref_ms, ratio = paired_ms(fn, ref, repeats)
        return f"{ms:.3f} ms vs {ref_ms:.3f} ms: {ratio:.2f}x {ref_name}", ratio_verdict(ratio, limit)

    return run_check(name, target, measure)


def fwd_bwd(f: Callable[[torch.Tensor], torch.Tensor], *leaves: torch.Tensor) -> Callable[[], None]:
    """One forward+backward step of ``f`` on ``leaves[0]`` (gradients of all ``leaves`` reset)."""
    def step() -> None:
        for t in leaves:
            t.grad = None
        y = f(leaves[0])
        y.backward(torch.ones_like(y))
    return step


def fwht_checks(quick: bool, repeats: int) -> list[Check]:
    from mnf.transforms import fwht
    total = 1 << (22 if quick else 24)  # float32 elements per call: 16 / 64 MB
    checks = []
    for n in FWHT_N:
        x = torch.randn(total // n, n, device="cuda")
        limit = FWHT_OVER_CLONE if n <= FWHT_BAR_MAX_N else None
        checks.append(speed_check(f"fwht ({total // n}, {n}) float32", "clone", limit,
                                  lambda: fwht(x), lambda: x.clone(), repeats))
    return checks


def adder_checks(quick: bool, repeats: int) -> list[Check]:
    from mnf.adder import adder2d
    from mnf.bench.adder import FULL, QUICK  # the layer shapes of benchmarks/bench_adder.py
    checks = []
    for name, n, c, h, o, k, s, p, g in QUICK if quick else FULL:
        x = torch.randn(n, c, h, h, device="cuda", requires_grad=True)
        w = torch.randn(o, c // g, k, k, device="cuda", requires_grad=True)
        adder = fwd_bwd(lambda t: adder2d(t, w, s, p, g), x, w)
        conv = fwd_bwd(lambda t: tf.conv2d(t, w, None, s, p, 1, g), x, w)
        checks.append(speed_check(f"adder2d {name}", "conv", ADDER_OVER_CONV, adder, conv, repeats))
    return checks


def wht_checks(quick: bool, repeats: int) -> list[Check]:
    from mnf.bench.wht_layers import POINTWISE_C  # the channels of benchmarks/bench_wht_layers.py
    from mnf.layers import WHTPointwise
    batch = 16 if quick else 64
    checks = []
    for c in POINTWISE_C:
        x = torch.randn(batch, c, 16, 16, device="cuda", requires_grad=True)
        wht, conv = WHTPointwise(c, c).cuda(), nn.Conv2d(c, c, 1, bias=False).cuda()
        limit = WHT_OVER_CONV1X1 if c >= WHT_BAR_MIN_C else None
        checks.append(speed_check(f"WHTPointwise C={c} b{batch} 16px", "conv1x1", limit,
                                  fwd_bwd(wht, x, *wht.parameters()), fwd_bwd(conv, x, conv.weight),
                                  repeats))
    return checks


# --------------------------------------------------------------------------- training

def training_data(quick: bool) -> tuple[torch.Tensor, ...]:
    from mnf.data import load_cifar10, stratified_subset
    data = load_cifar10()
    if not quick:
        return data.train_images, data.train_labels, data.test_images, data.test_labels
    return (*stratified_subset(data.train_images, data.train_labels, 400),
            *stratified_subset(data.test_images, data.test_labels, 100))


def training_checks(quick: bool) -> list[Check]:
    from mnf.models import mobilenet_v2
    from mnf.recipes import GPU_MODEL, GPU_RECIPE
    from mnf.train import fit
    recipe = {k: v for k, v in GPU_RECIPE.items() if k != "epochs"}
    checks = []
    for name, variant in VARIANTS.items():
        def epoch() -> tuple[str, str]:
            torch.manual_seed(0)
            history = fit(mobilenet_v2(**GPU_MODEL, **variant), training_data(quick), epochs=1,
                          progress=False, **recipe)
            loss, speed = history["train_loss"][-1], history["images_per_s"][-1]
            return f"{speed:,.0f} images/s, loss {loss:.3f}", "PASS" if math.isfinite(loss) else "FAIL"
        checks.append(run_check(f"MobileNetV2 epoch, {name}", "finite loss", epoch))
        torch.cuda.empty_cache()
    return checks


# --------------------------------------------------------------------------- main

def environment() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        numba_cuda = version("numba-cuda")
        from numba import cuda
        numba_gpu = cuda.is_available()  # False with a driver older than numba-cuda's CUDA toolkit
    except (PackageNotFoundError, ImportError) as error:
        numba_cuda, numba_gpu = "not installed", f"no ({error})"
    return (f"{torch.cuda.get_device_name()} | torch {torch.__version__} (CUDA {torch.version.cuda}) | "
            f"numba-cuda {numba_cuda}, sees the GPU: {numba_gpu}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 4,000 training images")
    parser.add_argument("--skip-tests", action="store_true", help="skip the pytest runs")
    parser.add_argument("--skip-book", action="store_true", help="skip the book in smoke mode")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_GPU)
        return 2
    print(environment(), flush=True)
    repeats = 5 if args.quick else 20
    checks = [skipped("tests", "--skip-tests")] if args.skip_tests else suite_checks()
    checks.append(skipped("book", "--skip-book") if args.skip_book else book_check())
    checks += section("fwht vs clone", lambda: fwht_checks(args.quick, repeats))
    checks += section("adder2d vs conv", lambda: adder_checks(args.quick, repeats))
    checks += section("WHTPointwise vs conv1x1", lambda: wht_checks(args.quick, repeats))
    checks += section("training", lambda: training_checks(args.quick))
    print("\n" + table(checks))
    code = exit_code(checks)
    print("gpu-check:", "FAIL" if code else "PASS")
    return code


if __name__ == "__main__":
    sys.exit(main())
