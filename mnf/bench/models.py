"""Whole models, one training step at a time: step rate, peak memory, where the time goes, and
what a second busy process does to it.

A training step is forward, cross-entropy, backward and an SGD step on one batch of random
images that stays in memory (the data pipeline is :mod:`mnf.train`'s business and is measured
by ``benchmarks/bench_trainer.py``). Variants are timed in interleaved rounds — one round is a
few steps of every variant in turn — and each variant's rate is the median over rounds, so a
burst of other work on the machine slows all variants alike instead of the one that happened
to run then.

- :func:`step_rates` images per second of every variant (quiet, and with ``load=True`` while a
  busy-loop subprocess competes for one core, in the same run);
- :func:`peak_memory` the resident memory a training step adds, each variant measured in a
  fresh subprocess (so no variant's allocator caches or kept scratch count for another);
- :func:`profile` forward and backward seconds per layer role of one MobileNetV2 variant
  (stem, expansion, depthwise, projection, shortcut, last, classifier, batch norm and
  activations) and the rest of the step (pooling, residual additions, loss, optimizer, the
  autograd engine).

``benchmarks/bench_models.py`` prints them with the targets of the multiplier-free variants.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnf.bench.adder import proc_status_bytes
from mnf.models import build
from mnf.recipes import CPU_MODEL

MOBILENET = dict(CPU_MODEL, input_size=32)
# name -> (builder, keyword arguments); the MobileNetV2 variants are the cpu budget's model
VARIANTS: dict[str, tuple[str, dict]] = {
    "vanilla": ("mobilenet_v2", dict(MOBILENET)),
    "last_wht": ("mobilenet_v2", dict(MOBILENET, last="wht")),
    "pw_wht": ("mobilenet_v2", dict(MOBILENET, pointwise="wht")),
    "adder": ("mobilenet_v2", dict(MOBILENET, pointwise="adder", depthwise="adder")),
    "wht2d": ("mobilenet_v2", dict(MOBILENET, depthwise="wht2d")),
    "resnet20": ("resnet20", {}),
    "resnet20_adder": ("resnet20", dict(conv3x3="adder")),
    "resnet20_ds_adder": ("resnet20", dict(conv3x3="separable_adder")),
}


def _setup(variant: str, batch: int, channels_last: bool, device: str = "cpu",
           seed: int = 0) -> tuple[nn.Module, Tensor, Tensor, torch.optim.Optimizer]:
    """``variant``'s model in training mode, a fixed random batch ``(batch, 3, 32, 32)`` with
    labels, both channels_last if asked, and an SGD optimizer."""
    name, kwargs = VARIANTS[variant]
    torch.manual_seed(seed)
    model = build(name, **kwargs).to(device).train()
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x, y, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def make_step(variant: str, batch: int = 256, channels_last: bool = True, device: str = "cpu",
              seed: int = 0) -> Callable[[], float]:
    """A function running one training step of ``variant`` on a fixed random batch
    ``(batch, 3, 32, 32)``; it returns the loss (a Python float, which also waits for the step)."""
    model, x, y, opt = _setup(variant, batch, channels_last, device, seed)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _busy() -> subprocess.Popen:
    """A CPU-bound subprocess (a pure-Python busy loop on one core) until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def step_rates(variants: list[str], batch: int = 256, rounds: int = 5, steps: int = 3, load: bool = False,
               channels_last: bool = True, baseline: str | None = None) -> dict[str, dict[str, float]]:
    """Images/s of each variant: the median over ``rounds`` interleaved rounds of ``steps``
    steps each (after one warm-up step). With ``load``, the same rounds are repeated while a
    busy-loop subprocess runs, alternating quiet and loaded rounds so that both see the same
    machine; each row then also has ``loaded`` and ``ratio``, the median over rounds of the
    loaded rate over the quiet rate of the same round. With ``baseline`` (one of ``variants``)
    each row has ``vs_baseline``: the median over rounds of its quiet rate over the baseline's in
    the same round. Ratios are taken within a round because this machine's speed drifts by up to
    a third within minutes; a ratio of two medians would mix rounds that saw different machines."""
    if baseline is not None and baseline not in variants:
        raise ValueError(f"step_rates: baseline {baseline!r} is not one of the variants {variants}")
    fns = {v: make_step(v, batch, channels_last) for v in variants}
    for fn in fns.values():
        fn()  # warm-up: Numba kernels load or compile, allocator caches fill
    quiet, loaded = defaultdict(list), defaultdict(list)
    for _ in range(rounds):
        for phase in (("quiet", "loaded") if load else ("quiet",)):
            busy = _busy() if phase == "loaded" else None
            try:
                if busy is not None:
                    time.sleep(0.2)  # let it start spinning
                for v, fn in fns.items():
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        fn()
                    (quiet if phase == "quiet" else loaded)[v].append(batch * steps / (time.perf_counter() - t0))
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    rows = {}
    for v in variants:
        row = {"quiet": statistics.median(quiet[v])}
        if load:
            row["loaded"] = statistics.median(loaded[v])
            row["ratio"] = statistics.median(a / q for a, q in zip(loaded[v], quiet[v]))
        if baseline is not None:
            row["vs_baseline"] = statistics.median(q / b for q, b in zip(quiet[v], quiet[baseline]))
        rows[v] = row
    return rows


def _peak_child(variant: str, batch: int, channels_last: bool) -> None:
    """In a fresh process: print the resident memory (bytes) one training step adds at its peak."""
    step = make_step(variant, batch, channels_last)
    step()  # the first step allocates the gradients, optimizer state and kept scratch: count them
    before = proc_status_bytes("VmRSS")
    step()
    print(json.dumps({"variant": variant, "bytes": proc_status_bytes("VmHWM") - before, "first_bytes": before}))


def peak_memory(variants: list[str], batch: int = 256, channels_last: bool = True) -> dict[str, int]:
    """Peak resident bytes of one training step of each variant over what the process held
    before it, each in its own subprocess (so VmHWM starts from that variant alone). Linux only."""
    out = {}
    for v in variants:
        code = (f"from mnf.bench.models import _peak_child; _peak_child({v!r}, {batch}, {channels_last})")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=dict(os.environ))
        out[v] = json.loads(res.stdout.strip().splitlines()[-1])["bytes"]
    return out


class _Stamp(torch.autograd.Function):
    """Identity whose backward records ``time.perf_counter()`` into ``box[key]``."""

    @staticmethod
    def forward(ctx, x: Tensor, box: dict, key: tuple) -> Tensor:
        ctx.box, ctx.key = box, key
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        ctx.box[ctx.key] = time.perf_counter()
        return grad, None, None


def roles(model: nn.Module) -> dict[nn.Module, str]:
    """The layers of a :class:`~mnf.models.MobileNetV2` by role: ``stem``, ``expansion``,
    ``depthwise``, ``projection``, ``shortcut``, ``last``, ``classifier`` and ``bn+act``."""
    from mnf.models.mobilenet_v2 import InvertedResidual
    out: dict[nn.Module, str] = {}
    feats = list(model.features)
    out[feats[0]] = "stem"
    for m in feats[1:]:
        if isinstance(m, InvertedResidual):
            body = list(m.body)
            names = (["expansion", "bn+act", "bn+act"] if len(body) == 8 else []) + \
                ["depthwise", "bn+act", "bn+act", "projection", "bn+act"]
            out.update(zip(body, names))
            if isinstance(m.shortcut, nn.Sequential):
                out[m.shortcut[0]], out[m.shortcut[1]] = "shortcut", "bn+act"
        elif isinstance(m, (nn.BatchNorm2d, nn.ReLU, nn.ReLU6)):
            out[m] = "bn+act"
        else:
            out[m] = "last"
    out[model.classifier] = "classifier"
    return out


def profile(variant: str, batch: int = 256, steps: int = 5, channels_last: bool = True) -> dict[str, dict]:
    """Seconds per step by role, forward and backward, median over ``steps`` steps (after one
    warm-up step): ``{role: {"forward": s, "backward": s}}`` plus ``"other"`` (the rest of the
    step) and ``"step"`` (the whole step, timed with the probes in place). Backward times come
    from identity autograd functions around each layer (their backward records the time the
    gradient reaches the layer's output and leaves its input), so they are the wall time of the
    layer's backward nodes, including any gradient accumulation the engine does there."""
    if VARIANTS[variant][0] != "mobilenet_v2":
        raise ValueError(f"profile: variant {variant!r} is not a MobileNetV2 variant; "
                         f"expected one of {[v for v, (n, _) in VARIANTS.items() if n == 'mobilenet_v2']}")
    model, x, y, opt = _setup(variant, batch, channels_last)
    x.requires_grad_(True)  # so that the stem's input probe sees its backward end
    role_of = roles(model)
    fwd: dict[int, float] = {}
    box: dict[tuple, float] = {}
    handles = []
    for m, role in role_of.items():
        def pre(mod, args, _id=id(m)):
            fwd[_id] = time.perf_counter()
            return (_Stamp.apply(args[0], box, (_id, "in")),) + tuple(args[1:])

        def post(mod, args, out, _id=id(m)):
            fwd[_id] = time.perf_counter() - fwd[_id]
            return _Stamp.apply(out, box, (_id, "out"))
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        for k in range(steps + 1):
            fwd.clear()
            box.clear()
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            total = time.perf_counter() - t0
            if k == 0:
                continue
            per = defaultdict(float)
            for m, role in role_of.items():
                per[(role, "forward")] += fwd[id(m)]
                per[(role, "backward")] += box[(id(m), "in")] - box[(id(m), "out")]
            for key, s in per.items():
                samples["/".join(key)].append(s)
            samples["step"].append(total)
            samples["other"].append(total - sum(per.values()))
    finally:
        for h in handles:
            h.remove()
    out: dict[str, dict] = {}
    for key, vals in samples.items():
        role, _, kind = key.partition("/")
        out.setdefault(role, {})[kind or "total"] = statistics.median(vals)
    return out
