"""The torch-facing CUDA bridges under Numba's simulator, CPU tensors standing in for CUDA tensors.

The bridges (``mnf.adder.cuda`` forward/grad_input/grad_weight/backward,
``mnf.transforms.cuda.transform_torch``, the WHT layers' CUDA path) and the dispatch points that
pick them (``mnf.adder.function._backend``, ``mnf.transforms.fwht._backend``,
``mnf.wht_layer.function.backend``) otherwise run only on a GPU (``test_gpu_vs_cpu.py``, marked
``gpu``). Here the fixture ``sim`` plays the parts torch and the driver play there:

- ``numba.cuda.as_cuda_array(t)``: what Numba makes of torch's ``__cuda_array_interface__`` (the
  shape, byte strides or None when contiguous, the data pointer; nothing about the neg bit;
  ``RuntimeError`` for a tensor that requires grad), read here as a NumPy array over the CPU
  tensor's memory and wrapped as the simulator's device array: kernel writes land in the
  tensor the bridge returns, so a missing write-back or a hidden copy fails;
- ``torch.cuda.current_stream(device).cuda_stream`` a marker pointer, ``numba.cuda.external_stream``
  a marker stream, and every kernel launch records its stream;
- :func:`pretend_cuda` makes the three dispatch points see every CPU tensor as a CUDA tensor
  (the real functions run, with ``torch.device("cuda", 0)``) and makes the CPU kernels raise.

Expected values come from the CPU backends (``mnf.adder.cpu``, ``mnf.transforms.cpu``, the fused
WHT kernels) on the same data. Shapes are tiny: the simulator runs a Python thread per thread.
"""
import importlib
import os
import types

import numpy as np
import pytest
import torch
from numba import cuda

import mnf.adder.cpu as adder_cpu
import mnf.adder.cuda as adder_cuda
import mnf.transforms as T
import mnf.transforms.cpu as fwht_cpu
import mnf.transforms.cuda as fwht_cuda
import mnf.wht_layer.cpu as wht_cpu
import mnf.wht_layer.cuda as wht_cuda
from mnf.adder import Adder2dFunction, adder2d, output_size
from mnf.adder import function as adder_function
from mnf.layers import Adder2d, WHTPointwise, WHTSpatial
from mnf.transforms.orderings import gather_indices
from mnf.wht_layer import function as wht_function

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip("simulator only (on a GPU, test_gpu_vs_cpu.py runs the bridges on CUDA tensors)",
                allow_module_level=True)

from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray  # noqa: E402 (simulator only)
from numba.cuda.simulator.kernel import FakeCUDAKernel  # noqa: E402

fwht_dispatch = importlib.import_module("mnf.transforms.fwht")  # the attribute is the function fwht
CUDA = torch.device("cuda", 0)
STREAM_PTR = 0x5EED  # torch's current stream, as the fake hands it out
DTYPES = [torch.float32, torch.float64]


class ExternalStream:
    """What the fake ``numba.cuda.external_stream`` returns: a marker holding the pointer."""

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class Seen:
    """What the fakes saw since the last :meth:`clear`."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.views: list[torch.Tensor] = []      # tensors handed to as_cuda_array
        self.devices: list[torch.device] = []    # devices asked for their current stream
        self.launches: list[object] = []         # the stream of every kernel launch

    def viewed(self, t: torch.Tensor) -> bool:
        """``t`` itself (its memory and strides, no copy) reached the kernels."""
        return any(v.data_ptr() == t.data_ptr() and v.stride() == t.stride() and v.shape == t.shape
                   for v in self.views)

    def assert_on_stream_of(self, t: torch.Tensor) -> None:
        """Kernels ran, every launch on torch's current stream of ``t``'s device."""
        assert self.launches, "no kernel launched"
        assert all(isinstance(s, ExternalStream) and s.ptr == STREAM_PTR for s in self.launches), self.launches
        assert self.devices and all(d == t.device for d in self.devices), self.devices


def _as_cuda_array(t, sync: bool = True):
    """``numba.cuda.as_cuda_array`` of a "CUDA" tensor: torch's interface, read over its memory."""
    if not isinstance(t, torch.Tensor):
        raise TypeError("*obj* doesn't implement the cuda array interface.")
    if t.requires_grad:  # torch's own check
        raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")
    dtype = torch.empty((), dtype=t.dtype).numpy().dtype
    strides = None if t.is_contiguous() else tuple(s * t.element_size() for s in t.stride())
    interface = dict(typestr=dtype.str, shape=tuple(t.shape), strides=strides,
                     data=(t.data_ptr() if t.numel() else 0, False), version=3)
    owner = types.SimpleNamespace(__array_interface__=interface, tensor=t)  # keeps t alive
    return FakeCUDAArray(np.asarray(owner))


@pytest.fixture
def sim(monkeypatch) -> Seen:
    """The simulator behind torch's CUDA API (module docstring); returns what the fakes see."""
    seen = Seen()

    def as_cuda_array(t, sync=True):
        seen.views.append(t)
        return _as_cuda_array(t, sync)

    def current_stream(device=None):
        seen.devices.append(device)
        return types.SimpleNamespace(cuda_stream=STREAM_PTR)

    launch = FakeCUDAKernel.__getitem__

    def configure(kernel, config):
        seen.launches.append(config[2] if len(config) > 2 else 0)
        return launch(kernel, config)

    monkeypatch.setattr(cuda, "as_cuda_array", as_cuda_array, raising=False)  # not in the simulator
    monkeypatch.setattr(cuda, "external_stream", ExternalStream)  # the simulator's raises
    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    monkeypatch.setattr(FakeCUDAKernel, "__getitem__", configure)
    return seen


def pretend_cuda(monkeypatch) -> None:
    """The dispatch points see CPU tensors as CUDA tensors; the CPU kernels raise if called."""
    def on_cuda(pick):
        return lambda device, *args: pick(CUDA if device.type == "cpu" else device, *args)

    monkeypatch.setattr(adder_function, "_backend", on_cuda(adder_function._backend))
    monkeypatch.setattr(fwht_dispatch, "_backend", on_cuda(fwht_dispatch._backend))
    monkeypatch.setattr(wht_function, "backend", on_cuda(wht_function.backend))

    def refuse(*args, **kwargs):
        raise AssertionError("a CPU kernel ran for a CUDA tensor")

    for module, names in ((adder_cpu, ("forward", "grad_input", "grad_weight", "backward")),
                          (fwht_cpu, ("transform_torch",)),
                          (wht_cpu, ("pointwise_forward", "pointwise_backward", "spatial_forward",
                                     "spatial_backward"))):
        for name in names:
            monkeypatch.setattr(module, name, refuse)


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to rounding, relative to the largest entry (sums run in different orders)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = 2e-5 if want.dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got, want, rtol=tol, atol=tol * max(1.0, want.abs().max().item()))


def fresh(got: torch.Tensor, shape: tuple, like: torch.Tensor) -> None:
    """A new contiguous tensor of ``shape`` in ``like``'s dtype, on its device."""
    assert got.shape == shape and got.dtype == like.dtype and got.device == like.device
    assert got.is_contiguous() and got.data_ptr() != like.data_ptr()


# --------------------------------------------------------------------------- adder bridge

# (N, C, H, W, O, (kh, kw), stride, padding, groups): the filter gradient launches a block of a
# warp per image for each filter tap, so O·C/groups·kh·kw and N stay small
ADDER = {
    "dense odd 3x1 s1 p1": (1, 2, 5, 3, 2, (3, 1), 1, 1, 1),
    "depthwise odd 3x3 s2 p1": (1, 2, 5, 4, 2, (3, 3), 2, 1, 2),
    "pointwise grouped s2 batch 2": (2, 4, 3, 5, 2, (1, 1), 2, 0, 2),
}
SMALL = (1, 2, 4, 3, 2, (2, 2), 2, 1, 2)  # depthwise, even kernel: the cheapest filter gradient


def adder_data(case, dtype, seed=0):
    """``x`` (N, C, H, W), ``w`` (O, C/groups, kh, kw), an output gradient and ``(s, p, groups)``."""
    n, c, h, w, o, (kh, kw), s, p, g = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    wt = torch.randn(o, c // g, kh, kw, generator=gen, dtype=dtype)
    grad = torch.randn(n, o, output_size(h, kh, s, p), output_size(w, kw, s, p), generator=gen, dtype=dtype)
    return x, wt, grad, (s, p, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ADDER))
def test_adder_bridge_matches_cpu(sim, name, dtype):
    x, w, g, conf = adder_data(ADDER[name], dtype)
    y = adder_cuda.forward(x, w, *conf)
    fresh(y, tuple(g.shape), x)
    close(y, adder_cpu.forward(x, w, *conf))
    assert sim.viewed(x) and sim.viewed(w) and sim.viewed(y)
    sim.assert_on_stream_of(x)
    sim.clear()
    sign = dtype == torch.float64  # both filter gradients, each dtype once
    dx, dw = adder_cuda.backward(x, w, g, *conf, sign=sign)
    fresh(dx, tuple(x.shape), x)
    fresh(dw, tuple(w.shape), x)
    close(dx, adder_cpu.grad_input(x, w, g, *conf))
    close(dw, adder_cpu.grad_weight(x, w, g, *conf, sign=sign))
    assert sim.viewed(g) and sim.viewed(dx) and sim.viewed(dw)
    sim.assert_on_stream_of(x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adder_bridge_takes_strided_views(sim, dtype):
    """channels_last input, sliced filters, a permuted and a stride-0 gradient reach the kernels
    as they are (no copies) and give the CPU results of their contiguous copies."""
    x, w, g, conf = adder_data(SMALL, dtype, seed=1)
    xs = x.to(memory_format=torch.channels_last)
    ws = torch.stack([w, torch.zeros_like(w)], dim=-1)[..., 0]   # strides (.., 2)
    gs = g.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels last
    g0 = torch.ones(()).to(dtype).expand(g.shape)                 # y.sum().backward()'s gradient
    assert not (xs.is_contiguous() or ws.is_contiguous() or gs.is_contiguous() or g0.is_contiguous())
    y = adder_cuda.forward(xs, ws, *conf)
    close(y, adder_cpu.forward(x, w, *conf))
    dx, dw = adder_cuda.backward(xs, ws, gs, *conf, sign=True)
    close(dx, adder_cpu.grad_input(x, w, g, *conf))
    for t in (y, dx):   # results keep the input's layout, as on the CPU
        assert t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    close(dw, adder_cpu.grad_weight(x, w, g, *conf, sign=True))
    close(adder_cuda.grad_input(xs, ws, g0, *conf), adder_cpu.grad_input(x, w, g0.contiguous(), *conf))
    assert sim.viewed(xs) and sim.viewed(ws) and sim.viewed(gs) and sim.viewed(g0)


def test_adder_bridge_reads_negative_views(sim):
    """A real tensor with the neg bit (``z.conj().imag``) holds ``-memory``; the interface
    exposes the memory, so the bridge must resolve the negation first."""
    x, w, g, conf = adder_data(SMALL, torch.float32, seed=2)
    xn = torch.complex(torch.zeros_like(x), -x).conj().imag  # == x, stored negated
    assert xn.is_neg()
    close(adder_cuda.forward(xn, w, *conf), adder_cpu.forward(x, w, *conf))
    close(adder_cuda.grad_input(xn, w, g, *conf), adder_cpu.grad_input(x, w, g, *conf))


def test_adder_dispatch_picks_backend_by_device():
    assert adder_function._backend(torch.device("cpu")) is adder_cpu
    assert adder_function._backend(torch.device("cuda")) is adder_cuda
    assert adder_function._backend(torch.device("cuda", 1)) is adder_cuda
    with pytest.raises(ValueError, match="meta"):
        adder_function._backend(torch.device("meta"))


# (entry, filter_grad, which arguments need a gradient): each backward branch once
AUTOGRAD = [("adder2d", "full", "both"), ("Adder2dFunction", "sign", "both"),
            ("adder2d", "sign", "input"), ("Adder2dFunction", "full", "weight")]


@pytest.mark.parametrize("entry,filter_grad,grads", AUTOGRAD)
def test_adder_autograd_runs_the_cuda_bridge(sim, monkeypatch, entry, filter_grad, grads):
    x, w, g, conf = adder_data(SMALL, torch.float64, seed=3)
    sign = filter_grad == "sign"
    want = (adder_cpu.forward(x, w, *conf), adder_cpu.grad_input(x, w, g, *conf),
            adder_cpu.grad_weight(x, w, g, *conf, sign))
    pretend_cuda(monkeypatch)
    called = []
    for name in ("forward", "backward", "grad_input", "grad_weight"):  # spies on the bridge
        def spy(*args, _name=name, _fn=getattr(adder_cuda, name)):
            called.append(_name)
            return _fn(*args)
        monkeypatch.setattr(adder_cuda, name, spy)
    x.requires_grad_(grads != "weight")
    w.requires_grad_(grads != "input")
    fn = adder2d if entry == "adder2d" else Adder2dFunction.apply
    y = fn(x, w, *conf, filter_grad)
    close(y.detach(), want[0])
    y.backward(g)
    branch = {"both": ["backward"], "input": ["grad_input"], "weight": ["grad_weight"]}[grads]
    assert called[0] == "forward" and called[1:len(branch) + 1] == branch
    for t, expected in ((x, want[1]), (w, want[2])):
        assert (t.grad is None) == (not t.requires_grad)
        if t.requires_grad:
            close(t.grad, expected)
    sim.assert_on_stream_of(x)


def test_adder_half_inputs_compute_in_float32(sim, monkeypatch):
    """float16 / bfloat16 arguments (autocast) reach the CUDA kernels as float32 and return
    float32; the gradients come back in each argument's dtype."""
    x, w, g, conf = adder_data(SMALL, torch.float32, seed=4)
    x16, wb16 = x.half(), w.bfloat16()
    xf, wf = x16.float(), wb16.float()
    want = (adder_cpu.forward(xf, wf, *conf), adder_cpu.grad_input(xf, wf, g, *conf),
            adder_cpu.grad_weight(xf, wf, g, *conf, False), adder_cpu.forward(x.bfloat16().float(), w, *conf))
    pretend_cuda(monkeypatch)
    x16.requires_grad_()
    wb16.requires_grad_()
    y = adder2d(x16, wb16, *conf)
    assert y.dtype == torch.float32
    close(y.detach(), want[0])
    y.backward(g)
    assert x16.grad.dtype == torch.float16 and wb16.grad.dtype == torch.bfloat16
    torch.testing.assert_close(x16.grad, want[1].half())
    torch.testing.assert_close(wb16.grad, want[2].bfloat16())
    layer = Adder2d(2, 2, 2, stride=2, padding=1, groups=2)
    with torch.no_grad():
        layer.weight.copy_(w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = layer(x.bfloat16())
    assert yb.dtype == torch.float32
    close(yb.detach(), want[3])
    assert {v.dtype for v in sim.views} == {torch.float32}


# --------------------------------------------------------------------------- transform bridge

def transform_inputs(dtype) -> dict[str, torch.Tensor]:
    """``(outer, 8, inner)`` tensors: contiguous, strided rows (inner fastest), sliced."""
    gen = torch.Generator().manual_seed(5)
    return {"contiguous": torch.randn(2, 8, 1, generator=gen, dtype=dtype),
            "strided rows": torch.randn(1, 3, 8, generator=gen, dtype=dtype).transpose(1, 2),
            "sliced": torch.randn(1, 16, 5, generator=gen, dtype=dtype)[:, ::2, 1:3]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", T.ORDERS)
def test_transform_bridge_matches_cpu(sim, order, dtype):
    for layout, x3 in transform_inputs(dtype).items():
        sim.clear()
        out = fwht_cuda.transform_torch(x3, order, 0.25)
        fresh(out, tuple(x3.shape), x3)
        close(out, fwht_cpu.transform_torch(x3, order, 0.25))
        assert sim.viewed(x3) and sim.viewed(out), layout
        sim.assert_on_stream_of(x3)
    perm = fwht_cuda._perm_cache[(8, order, x3.device)]  # torch's copy, on the tensor's device
    assert isinstance(perm, torch.Tensor) and perm.device == x3.device and perm.dtype == torch.int64
    want = gather_indices(8, order)
    np.testing.assert_array_equal(perm.numpy(), want if want.size else np.arange(8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_transform_bridge_multi_pass(sim, monkeypatch, dtype):
    """Rows longer than the shared-memory limit: in-place passes over a scratch array, then the
    gather into torch's output, all on torch's stream."""
    monkeypatch.setitem(fwht_cuda.SHARED_MAX, np.dtype(torch.empty((), dtype=dtype).numpy().dtype), 4)
    x3 = transform_inputs(dtype)["strided rows"]
    out = fwht_cuda.transform_torch(x3, "walsh", 0.5)
    close(out, fwht_cpu.transform_torch(x3, "walsh", 0.5))
    assert len(sim.launches) == 3  # n = 8: a radix-4 pass (h = 1), a radix-2 one (h = 4), the gather
    sim.assert_on_stream_of(x3)


def test_transform_bridge_reads_negative_views(sim):
    x3 = transform_inputs(torch.float32)["contiguous"]
    xn = torch.complex(torch.zeros_like(x3), -x3).conj().imag
    assert xn.is_neg()
    close(fwht_cuda.transform_torch(xn, "hadamard", 1.0), fwht_cpu.transform_torch(x3, "hadamard", 1.0))


def test_fwht_dispatch_picks_backend_by_device():
    assert fwht_dispatch._backend(torch.device("cpu")) is fwht_cpu
    assert fwht_dispatch._backend(torch.device("cuda")) is fwht_cuda
    with pytest.raises(ValueError, match="meta"):
        fwht_dispatch._backend(torch.device("meta"))


# the contiguous layout, blocks and the natural order are in the layer and bridge tests
TRANSFORMS = {
    "fwht dim 1 walsh normalized": lambda t: T.fwht(t, dim=1, order="walsh", normalized=True),
    "ifwht2d dims (1, 2) pad dyadic": lambda t: T.ifwht2d(t, dims=(1, 2), order="dyadic", pad=True),
}


@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_fwht_runs_the_cuda_bridge(sim, monkeypatch, layout):
    """fwht and friends on "CUDA" tensors: values, gradients and memory layout of the CPU path."""
    torch.manual_seed(6)  # the gradients: randn_like keeps the layout
    x = torch.randn(1, 4, 3, 2, dtype=torch.float64)
    x = {"channels_last": x.to(memory_format=torch.channels_last), "sliced": torch.cat([x, x], dim=1)[:, ::2]}[layout]
    g = {name: torch.randn_like(fn(x)) for name, fn in TRANSFORMS.items()}
    want = {}
    for name, fn in TRANSFORMS.items():
        xc = x.detach().clone().requires_grad_()
        y = fn(xc)
        y.backward(g[name])
        want[name] = y.detach(), y.stride(), xc.grad
    pretend_cuda(monkeypatch)
    for name, fn in TRANSFORMS.items():
        xg = x.detach().clone().requires_grad_()
        y = fn(xg)
        y.backward(g[name])
        close(y.detach(), want[name][0])
        assert y.stride() == want[name][1], name  # laid out like the input, as on the CPU
        close(xg.grad, want[name][2])
    sim.assert_on_stream_of(x)


def test_fwht_half_inputs_compute_in_float32(sim, monkeypatch):
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(7)).half()
    g = torch.randn(2, 8, generator=torch.Generator().manual_seed(8))
    want = T.fwht(x.float(), order="walsh"), T.fwht(g, order="walsh").half()
    pretend_cuda(monkeypatch)
    x.requires_grad_()
    y = T.fwht(x, order="walsh")
    assert y.dtype == torch.float32
    close(y.detach(), want[0])
    y.backward(g)
    assert x.grad.dtype == torch.float16
    torch.testing.assert_close(x.grad, want[1])
    assert sim.launches and {v.dtype for v in sim.views} == {torch.float32, torch.int64}  # data, perm


# --------------------------------------------------------------------------- WHT layers

def test_wht_layer_backend_picks_by_device():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert wht_function.backend(cpu, True) is wht_cpu
    assert wht_function.backend(cpu, False) is wht_cuda
    assert wht_function.backend(gpu, True) is wht_cuda   # no fused CUDA kernels: the composed path
    assert wht_function.backend(gpu, False) is wht_cuda
    with pytest.raises(ValueError, match="meta"):
        wht_function.backend(torch.device("meta"), True)


LAYERS = {
    "WHTPointwise 3->4 scale": (lambda: WHTPointwise(3, 4, scale=True), (1, 3, 2, 3)),
    "WHTPointwise 4->4 blocks of 2 hard": (lambda: WHTPointwise(4, 4, block_size=2, threshold="hard"),
                                           (1, 4, 1, 3)),
    "WHTSpatial 2ch 3x3 smooth": (lambda: WHTSpatial(2, 3, 3, threshold="smooth"), (1, 2, 3, 3)),
}


def _layer(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    make, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = make().double()
    with torch.no_grad():  # thresholds and scales away from their common init
        for prm in layer.parameters():
            prm.add_(0.05 * torch.rand_like(prm))
    return layer, torch.randn(shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)


def _run(layer, x, g):
    for prm in layer.parameters():
        prm.grad = None
    x = x.detach().clone().requires_grad_()
    y = layer(x)
    y.backward(g)
    return y.detach(), x.grad, [prm.grad.clone() for prm in layer.parameters()]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_wht_layers_run_the_cuda_bridge(sim, monkeypatch, name, layout):
    """The layers on "CUDA" tensors (composed path, transforms through the bridge) against the
    fused CPU kernels: output, input gradient, parameter gradients, in NCHW and channels last."""
    layer, x = _layer(name)
    x = x.contiguous(memory_format=layout)
    g = torch.randn(layer(x).shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    g = g.contiguous(memory_format=layout)
    want = _run(layer, x, g)
    pretend_cuda(monkeypatch)
    got = _run(layer, x, g)
    close(got[0], want[0])
    close(got[1], want[1])
    for a, b in zip(got[2], want[2]):
        close(a, b)
    sim.assert_on_stream_of(x)


def test_wht_layer_half_input_computes_in_float32(sim, monkeypatch):
    layer, x = _layer("WHTPointwise 3->4 scale")
    layer = layer.float()
    xh = x.half()
    xf = xh.float().requires_grad_()
    want = layer(xf)
    want.sum().backward()
    pretend_cuda(monkeypatch)
    xh.requires_grad_()
    y = layer(xh)
    assert y.dtype == torch.float32
    close(y.detach(), want.detach())
    y.sum().backward()
    assert xh.grad.dtype == torch.float16
    torch.testing.assert_close(xh.grad, xf.grad.half())
    assert sim.launches and torch.float16 not in {v.dtype for v in sim.views}
