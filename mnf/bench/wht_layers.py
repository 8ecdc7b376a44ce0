"""WHT layers vs the convolutions they replace: forward+backward time and memory, side by side.

Time: the best (minimum) over repeats of one forward and one backward (``y.backward(g)``) after a
warm-up call (so Numba compilation and allocator warm-up are excluded), with
``torch.set_num_threads(2)`` and ``numba.set_num_threads(2)``; on CUDA every timed step is
synchronised. The minimum, not the median, because on a shared machine a parallel region can wait
a whole scheduler time slice (~10 ms) for its second thread; the minimum is the least disturbed
run of both contenders.

Memory: bytes of the layer's parameters plus every distinct tensor storage that autograd keeps
for the backward pass (recorded with ``torch.autograd.graph.saved_tensors_hooks``; the input
counts once if saved) plus the output.
That is what a training step holds between forward and backward for this layer; transient
workspace inside a kernel (e.g. oneDNN buffers, our per-thread tiles) is not counted.
"""
from __future__ import annotations

import torch
from torch import nn

from mnf.layers.wht import WHTPointwise, WHTSpatial
from mnf.timing import seconds, synchronizer, threads

POINTWISE_C = (64, 256, 1024, 1280)


def held_bytes(layer: nn.Module, x: torch.Tensor) -> int:
    """Parameters + distinct storages saved for backward + output, in bytes (see module doc)."""
    seen: dict[int, int] = {p.data_ptr(): p.numel() * p.element_size() for p in layer.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen.setdefault(st.data_ptr(), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = layer(x)
    seen.setdefault(y.untyped_storage().data_ptr(), y.untyped_storage().nbytes())
    return sum(seen.values())


def time_step(layer: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Best seconds of forward + backward over ``repeats`` (after one warm-up step)."""
    sync = synchronizer(x.device)
    g = torch.randn_like(layer(x))
    times = []
    for _ in range(repeats + 1):
        x.grad = None
        layer.zero_grad(set_to_none=True)
        times.append(seconds(lambda: layer(x).backward(g), sync))
    return min(times[1:])


def measure(case: str, name: str, layer: nn.Module, x: torch.Tensor, repeats: int) -> dict:
    """One row: ``layer`` (moved to ``x``'s device) timed and its held memory counted on ``x``."""
    layer = layer.to(x.device)
    return dict(case=case, layer=name, ms=1e3 * time_step(layer, x, repeats),
                mem_mb=held_bytes(layer, x) / 2**20, params=sum(p.numel() for p in layer.parameters()))


def run(quick: bool = True, device: torch.device | str = "cpu") -> list[dict]:
    """Rows ``{case, layer, ms, mem_mb, params}``; ``quick``: batch 8 (else 64), 5 repeats (< 20 s)."""
    batch, repeats = (8, 5) if quick else (64, 5)
    torch.manual_seed(0)
    rows = []

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape).to(device).requires_grad_()

    with threads(2, 2):
        for c in POINTWISE_C:
            x = randn(batch, c, 16, 16)
            case = f"1x1 C={c}"
            rows.append(measure(case, "Conv2d(C, C, 1)", nn.Conv2d(c, c, 1, bias=False), x, repeats))
            rows.append(measure(case, "WHTPointwise", WHTPointwise(c, c), x, repeats))
            if c & (c - 1):
                rows.append(measure(case, "WHTPointwise b=256", WHTPointwise(c, c, block_size=256), x, repeats))
        x = randn(batch, 256, 8, 8)
        case = "3x3 C=256 8x8"
        rows.append(measure(case, "Conv2d 3x3 dense", nn.Conv2d(256, 256, 3, padding=1, bias=False), x, repeats))
        rows.append(measure(case, "Conv2d 3x3 depthwise",
                            nn.Conv2d(256, 256, 3, padding=1, groups=256, bias=False), x, repeats))
        rows.append(measure(case, "WHTSpatial", WHTSpatial(256, 8, 8), x, repeats))
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    """PASS/FAIL lines for the issue's targets (speed-up of WHTPointwise over the 1×1 conv)."""
    by = {(r["case"], r["layer"]): r for r in rows}
    lines = []
    for c in POINTWISE_C:
        conv, wht = by[(f"1x1 C={c}", "Conv2d(C, C, 1)")], by[(f"1x1 C={c}", "WHTPointwise")]
        speed = conv["ms"] / wht["ms"]
        need = 5.0 if c == 1024 else 3.0 if c >= 256 else None
        if need is not None:
            verdict = "PASS" if speed >= need else "FAIL"
            lines.append(f"{verdict}  C={c}: {speed:.1f}x faster (target >= {need:g}x)")
        less = wht["mem_mb"] < conv["mem_mb"]
        lines.append(f"{'PASS' if less else 'FAIL'}  C={c}: memory {wht['mem_mb']:.2f} MB vs conv "
                     f"{conv['mem_mb']:.2f} MB (target: less)")
    case = "3x3 C=256 8x8"
    dense, dw, sp = (by[(case, k)]["ms"] for k in ("Conv2d 3x3 dense", "Conv2d 3x3 depthwise", "WHTSpatial"))
    lines.append(f"INFO  WHTSpatial vs dense 3x3: {dense / sp:.1f}x, vs depthwise 3x3: {dw / sp:.2f}x "
                 "(seed 003 reports ~24x vs dense 3x3 on a Jetson Nano)")
    return lines


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    head = f"{'case':<16}{'layer':<24}{'fwd+bwd ms':>12}{'held MB':>10}{'params':>11}"
    body = [f"{r['case']:<16}{r['layer']:<24}{r['ms']:>12.2f}{r['mem_mb']:>10.2f}{r['params']:>11,}"
            for r in rows]
    return "\n".join([head, "-" * len(head), *body])
