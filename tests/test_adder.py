"""Adder convolution: CPU kernels and autograd against the torch unfold oracle (adder_oracle.py),
contracts, adaptive lr."""
import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from adder_oracle import oracle
from mnf.adder import adder2d, cpu, output_size, reference
from mnf.adder.cpu import dispatch, layout
from mnf.layers.adder import Adder2d, adaptive_lr, adaptive_scale


# (N, C, H, W, O, k, stride, padding, groups)
CASES = [
    (2, 3, 7, 5, 4, 3, 1, 1, 1),      # odd, non-square
    (1, 4, 6, 9, 6, 3, 2, 1, 2),      # batch 1, stride 2, grouped
    (3, 6, 8, 8, 6, 3, 1, 1, 6),      # depthwise
    (2, 5, 9, 4, 5, 3, 2, 2, 5),      # depthwise, stride 2, big padding
    (2, 8, 5, 5, 12, 1, 1, 0, 1),     # pointwise
    (1, 4, 5, 7, 8, 2, 3, 0, 4),      # even kernel, stride 3, 1 in / 2 out channels per group
    (2, 6, 4, 4, 3, 4, 1, 0, 3),      # kernel == input, grouped 2 -> 1
    (2, 4, 3, 3, 4, 5, 1, 1, 1),      # kernel larger than input, fits the padded input
    (2, 64, 5, 6, 10, 3, 2, 1, 2),    # 32 channels per group, 3x3: the register forward kernel,
    (1, 288, 3, 3, 7, 1, 1, 0, 1),    # and 1x1 with 288 channels; 10 and 7 filters leave remainders
    (2, 8, 6, 5, 16, 3, 2, 1, 2),     # 8 filters per group, 3x3: the register input-gradient kernel,
    (1, 6, 5, 5, 24, 3, 1, 1, 1),     # with 6 input channels (a remainder of the 4-way blocking)
    (2, 5, 16, 14, 6, 3, 1, 1, 1),    # planes of >= GIN_FLAT_MIN elements: the flat input gradient,
    (1, 8, 17, 16, 8, 3, 1, 2, 2),    # grouped, padding larger than (k - 1) / 2,
    (1, 9, 16, 17, 4, 1, 1, 0, 1),    # and 1x1
    (2, 12, 9, 10, 8, 3, 1, 1, 1),    # >= 8 channels and columns: 8x8 SIMD transposes + leftovers
    (2, 16, 11, 9, 16, 3, 1, 1, 16),  # the same, depthwise
    (1, 24, 17, 17, 24, 3, 2, 1, 24), # depthwise, stride 2, output rows of 9
    (2, 20, 5, 4, 20, 3, 1, 1, 20),   # depthwise, rows of 4 pixels: 8x8 blocks across rows
    (1, 16, 6, 6, 16, 3, 2, 1, 16),   # the same with stride 2
    (2, 10, 7, 9, 10, 5, 2, 2, 10),   # depthwise 5x5 and 2x2: the forward's general tap loop
    (1, 9, 6, 5, 9, 2, 1, 0, 9),      # (3x3 has a loop of its own)
]


def _data(case, dtype=torch.float64, seed=0):
    n, c, h, w, o, k, s, p, g = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    wt = torch.randn(o, c // g, k, k, generator=gen, dtype=dtype)
    return x, wt, s, p, g


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("filter_grad", ["full", "sign"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "channels_last, nchw grad"])
def test_autograd_matches_oracle(case, filter_grad, layout):
    """Every case in NCHW and channels last (the kernels' *_nhwc path), and a channels-last input
    whose output gradient arrives in NCHW."""
    x, w, s, p, g = _data(case)
    fmt = torch.contiguous_format if layout == "nchw" else torch.channels_last
    x1, w1 = x.clone().contiguous(memory_format=fmt).requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    y1 = adder2d(x1, w1, s, p, g, filter_grad)
    y2 = oracle(x2, w2, s, p, g, filter_grad == "sign")
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    if layout != "nchw" and x.shape[1] > 1:  # the result keeps the input's layout
        assert y1.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(y1).contiguous()
    if layout == "channels_last":
        grad = grad.contiguous(memory_format=torch.channels_last)
    y1.backward(grad)
    y2.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:3] + CASES[4:5])
def test_reference_matches_oracle(case):
    x, w, s, p, g = _data(case, seed=1)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = oracle(xr, wr, s, p, g)
    grad = torch.randn_like(y)
    y.backward(grad)
    xn, wn, gn = x.numpy(), w.numpy(), grad.numpy()
    np.testing.assert_allclose(reference.forward(xn, wn, s, p, g), y.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(reference.grad_input(xn, wn, gn, s, p, g), xr.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(reference.grad_weight(xn, wn, gn, s, p, g), wr.grad.numpy(), atol=1e-12)


def test_float32_and_channels_last_match_float64():
    x, w, s, p, g = _data(CASES[0])
    y64 = adder2d(x, w, s, p, g)
    x32 = x.float().contiguous(memory_format=torch.channels_last).requires_grad_()
    w32 = w.float().requires_grad_()
    y32 = adder2d(x32, w32, s, p, g)
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=1e-5, atol=1e-4)
    y32.sum().backward()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    oracle(xr, wr, s, p, g).sum().backward()
    torch.testing.assert_close(x32.grad.double(), xr.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(w32.grad.double(), wr.grad, rtol=1e-5, atol=1e-4)


def test_hand_computed_example():
    x = torch.tensor([[[[0.0, 2.0, 1.0], [-1.0, 0.5, 3.0]]]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]], dtype=torch.float64, requires_grad=True)
    y = adder2d(x, f)  # windows: columns 0-1 and 1-2
    torch.testing.assert_close(y.detach(), torch.tensor([[[[-4.5, -4.5]]]], dtype=torch.float64))
    y.backward(torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64))
    # dF = 1 * (X0 - F) + 2 * (X1 - F) with X0 - F = [[-1, 2], [-1, -.5]], X1 - F = [[1, 1], [.5, 2]]
    torch.testing.assert_close(f.grad, torch.tensor([[[[1.0, 4.0], [0.0, 3.5]]]], dtype=torch.float64))
    # dX = 1 * HT(F - X0) on columns 0-1 + 2 * HT(F - X1) on columns 1-2
    torch.testing.assert_close(x.grad, torch.tensor([[[[1.0, -3.0, -2.0], [1.0, -0.5, -2.0]]]],
                                                    dtype=torch.float64))
    f.grad = None
    adder2d(x, f, filter_grad="sign").backward(torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64))
    torch.testing.assert_close(f.grad, torch.tensor([[[[1.0, 3.0], [1.0, 1.0]]]], dtype=torch.float64))


@pytest.mark.parametrize("case", [CASES[0], CASES[3]])
def test_padding_is_explicit_zero_padding(case):
    x, w, s, p, g = _data(case, seed=2)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = adder2d(xa, w, s, p, g)
    yb = adder2d(tf.pad(xb, (p, p, p, p)), w, s, 0, g)
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ya)
    ya.backward(grad)
    yb.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=1e-12)


def test_both_dense_kernels_of_each_pass_are_used():
    """The cases above reach both dense forward and both dense input-gradient kernels (each
    pass chooses by its reduction length)."""
    dense = [(c // g * k * k, o // g * k * k) for n, c, h, w, o, k, s, p, g in CASES if g < c]
    assert min(f for f, _ in dense) < cpu.REDUCE_MIN <= max(f for f, _ in dense)
    assert min(b for _, b in dense) < cpu.GIN_REDUCE_MIN <= max(b for _, b in dense)


def test_flat_kernels_and_transposes_are_used():
    """Some cases above take the flat-plane forward and input-gradient kernels (stride 1, planes
    of at least FLAT_MIN / GIN_FLAT_MIN elements), some do not, and some have whole 8x8 blocks
    for the SIMD transposes, dense and depthwise, within rows and (rows narrower than 8) across;
    depthwise cases have 3x3 filters and others."""
    flat = [h * (w + 2 * p - k + 1 + 2 * (k - 1)) >= cpu.GIN_FLAT_MIN
            for n, c, h, w, o, k, s, p, g in CASES if s == 1 and g < c]
    assert any(flat) and not all(flat)
    flat_fwd = [(h + 2 * p - k + 1) * (w + 2 * p) >= cpu.FLAT_MIN
                for n, c, h, w, o, k, s, p, g in CASES if s == 1 and g < c and k > 1]
    assert any(flat_fwd) and not all(flat_fwd)
    blocks = {g == c for n, c, h, w, o, k, s, p, g in CASES if c >= 8 and w >= 8}
    assert blocks == {True, False}
    assert any(g == c >= 8 and w < 8 <= h * w for n, c, h, w, o, k, s, p, g in CASES)  # across rows
    assert {k == 3 for n, c, h, w, o, k, s, p, g in CASES if g == c} == {True, False}


def test_transpose8_matches_numpy():
    from numba import njit

    from mnf.simd import transpose8, transpose8_network

    rows = [np.arange(8) + 8 * r for r in range(8)]
    cols = transpose8_network(rows, lambda a, b, m: np.concatenate([a, b])[m])
    np.testing.assert_array_equal(np.array(cols), np.arange(64).reshape(8, 8).T)

    @njit
    def run(src, s0, ss, dst, d0, ds):
        transpose8(src, s0, ss, dst, d0, ds)

    for dtype in (np.float32, np.float64):
        src = np.random.default_rng(0).standard_normal(200).astype(dtype)
        dst = np.zeros(300, dtype)
        run(src, 5, 23, dst, 7, 31)
        want = np.zeros(300, dtype)
        for r in range(8):
            for c in range(8):
                want[7 + c * 31 + r] = src[5 + r * 23 + c]
        np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("case", CASES)
def test_backward_matches_separate_gradients(case):
    """dispatch.backward (one sweep for depthwise layers) == grad_input and grad_weight, both filter
    gradients; every case, so depthwise ones with strides, big padding and odd sizes too."""
    x, w, s, p, g = (v.numpy() if isinstance(v, torch.Tensor) else v for v in _data(case, seed=5))
    gy = np.random.default_rng(6).standard_normal(dispatch.forward(x, w, s, p, g).shape)
    for sign in (False, True):
        dx, dw = dispatch.backward(x, w, gy, s, p, g, sign)
        np.testing.assert_allclose(dx, dispatch.grad_input(x, w, gy, s, p, g), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, dispatch.grad_weight(x, w, gy, s, p, g, sign), rtol=1e-12, atol=1e-12)


def test_cpu_kernels_direct_numpy_and_torch():
    """The NumPy level (``dispatch``) against the reference, and the torch entry of the backend
    (``mnf.adder.cpu``: tensors in, tensors out) against the NumPy level."""
    x, w, s, p, g = _data(CASES[1], seed=3)
    xn, wn = x.numpy(), w.numpy()
    y = dispatch.forward(xn, wn, s, p, g)
    gn = np.random.default_rng(0).standard_normal(y.shape)
    np.testing.assert_allclose(y, reference.forward(xn, wn, s, p, g), rtol=1e-12)
    np.testing.assert_allclose(dispatch.grad_input(xn, wn, gn, s, p, g), reference.grad_input(xn, wn, gn, s, p, g),
                               atol=1e-12)
    np.testing.assert_allclose(dispatch.grad_weight(xn, wn, gn, s, p, g, True),
                               reference.grad_weight(xn, wn, gn, s, p, g, True), atol=1e-12)
    gt = torch.from_numpy(gn)
    yt = cpu.forward(x, w, s, p, g)
    assert isinstance(yt, torch.Tensor) and yt.dtype == x.dtype
    np.testing.assert_array_equal(yt.numpy(), y)
    np.testing.assert_array_equal(cpu.grad_input(x, w, gt, s, p, g).numpy(), dispatch.grad_input(xn, wn, gn, s, p, g))
    np.testing.assert_array_equal(cpu.grad_weight(x, w, gt, s, p, g, False).numpy(),
                                  dispatch.grad_weight(xn, wn, gn, s, p, g, False))
    for a, b in zip(cpu.backward(x, w, gt, s, p, g, True), dispatch.backward(xn, wn, gn, s, p, g, True)):
        np.testing.assert_array_equal(a.numpy(), b)


def test_output_size():
    assert output_size(8, 3, 1, 1) == 8 and output_size(9, 3, 2, 1) == 5 and output_size(4, 4) == 1
    assert output_size(np.int64(7), 2, 3) == 2
    with pytest.raises(ValueError, match="larger than the padded input"):
        output_size(4, 7, 1, 1)
    with pytest.raises(TypeError, match="kernel"):
        output_size(4, (3, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scratch_and_results_start_on_a_cache_line(dtype):
    like = np.zeros(1, dtype)
    for shape in [(1,), (3, 5), (2, 3, 5, 7)]:
        for make in (layout._empty, layout._zeros):
            a = make(shape, like)
            assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
            assert a.ctypes.data % layout.ALIGN == 0
        assert not layout._zeros(shape, like).any()
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 6)).astype(dtype)
    w = np.random.default_rng(1).standard_normal((8, 1, 3, 3)).astype(dtype)
    for out in (dispatch.forward(x, w, 2, 1, 8), dispatch.backward(x, w, np.ones((2, 8, 3, 3), dtype), 2, 1, 8)[0]):
        assert out.ctypes.data % layout.ALIGN == 0  # the large results (not the filter gradient)
    np.testing.assert_array_equal(layout._dw_filters(w), w[:, 0].transpose(1, 2, 0))


def test_grouped_filters_take_their_axis_order():
    w = np.random.default_rng(2).standard_normal((6, 2, 3, 4))  # (O, C/G, kh, kw), 3 groups
    w_gkcij = w.reshape(3, 2, 2, 3, 4)
    for order in ("gijck", "gkijc", "gijkc", "gcijk"):
        got = layout._grouped(w, 3, order)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, np.einsum(f"gkcij->{order}", w_gkcij))


def test_flat_planes_are_kept_between_calls_and_released():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 16, 16)), rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 16, 16))
    dispatch.grad_input(x, w, g, 1, 1, 1)  # a stride-1 layer with planes >= GIN_FLAT_MIN: flat kernels
    kept = {role: getattr(layout._scratch, role).ctypes.data for role in ("x", "grad")}
    small = rng.standard_normal((1, 3, 16, 16))  # fits in the kept planes: reused, still correct
    dx = dispatch.grad_input(small, w, g[:1], 1, 1, 1)
    assert {role: getattr(layout._scratch, role).ctypes.data for role in ("x", "grad")} == kept
    np.testing.assert_allclose(dx, reference.grad_input(small, w, g[:1], 1, 1, 1), atol=1e-12)
    cpu.release_scratch()
    assert not hasattr(layout._scratch, "x") and not hasattr(layout._scratch, "grad")
    np.testing.assert_allclose(dispatch.grad_input(x, w, g, 1, 1, 1), reference.grad_input(x, w, g, 1, 1, 1),
                               atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, kw, match", [
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(groups=2), "divisible by groups"),
    ((3, 8, 8), (4, 3, 3, 3), {}, "rank 4"),
    ((2, 3, 8, 8), (4, 3, 3), {}, "rank 4"),
    ((2, 3, 4, 4), (4, 3, 7, 7), dict(padding=1), "larger than the padded input"),
    ((2, 6, 8, 8), (4, 4, 3, 3), dict(groups=2), "expected 8"),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(stride=0), "stride"),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(filter_grad="l2"), "filter_grad"),
])
def test_bad_input_raises(x_shape, w_shape, kw, match):
    with pytest.raises(ValueError, match=match):
        adder2d(torch.zeros(x_shape), torch.zeros(w_shape), **kw)


def test_bad_dtype_and_layer_errors():
    with pytest.raises(ValueError, match="float32"):
        adder2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 1, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="divisible"):
        Adder2d(6, 4, 3, groups=4)
    layer = Adder2d(3, 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"got input of shape \(1, 5, 8, 8\), expected \(N, 3, H, W\)"):
        layer(torch.zeros(1, 5, 8, 8))


def test_layer_shapes_bias_and_depthwise():
    layer = Adder2d(8, 8, 3, stride=2, padding=1, groups=8, bias=True)
    assert layer.weight.shape == (8, 1, 3, 3)
    x = torch.randn(2, 8, 9, 10)
    with torch.no_grad():
        layer.bias.fill_(1.5)
    y = layer(x)
    assert y.shape == (2, 8, 5, 5)
    torch.testing.assert_close(y, oracle(x, layer.weight.detach(), 2, 1, 8) + 1.5, rtol=1e-5, atol=1e-4)
    assert "groups=8" in repr(layer)


def test_adaptive_lr_hooks_scale_only_adder_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential(Adder2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), Adder2d(4, 4, 1),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 2))
    x = torch.randn(2, 3, 5, 5)

    def grads():
        model.zero_grad()
        model(x).square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    raw = grads()
    handles = adaptive_lr(model, eta=0.3)
    assert len(handles) == 2
    scaled = grads()
    for i, (a, b) in enumerate(zip(raw, scaled)):
        if i in (0, 3):  # the two adder weights
            alpha = 0.3 * a.numel() ** 0.5 / a.norm()
            torch.testing.assert_close(b, alpha * a)
            torch.testing.assert_close(b.norm(), torch.tensor(0.3 * a.numel() ** 0.5))
        else:
            torch.testing.assert_close(b, a)
    for h in handles:
        h.remove()
    for a, b in zip(raw, grads()):
        torch.testing.assert_close(b, a)


def test_adaptive_lr_with_sgd_step_and_zero_grad():
    layer = Adder2d(1, 1, 1)
    adaptive_lr(layer, eta=0.2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.weight.detach().clone()
    g = layer(torch.zeros(1, 1, 2, 2)).sum()
    g.backward()
    opt.step()  # |grad| = eta * sqrt(1): the filter moves by exactly gamma * eta
    torch.testing.assert_close((layer.weight.detach() - before).abs(), torch.full_like(before, 0.1 * 0.2))
    assert torch.equal(adaptive_scale(torch.zeros(3)), torch.zeros(3))
    with pytest.raises(ValueError, match="eta"):
        adaptive_lr(layer, eta=0.0)


def test_ptx_compiles_for_every_cuda_kernel():
    from numba import cuda as ncuda

    from mnf.adder.cuda import kernels

    sigs = kernels.signatures()
    assert len(sigs) == 6
    for kernel, sig in sigs:
        ptx, _ = ncuda.compile_ptx(kernel.py_func, sig, cc=(7, 5))
        assert ".entry" in ptx or ".visible .entry" in ptx


def test_negated_view_input_is_read_as_its_values():
    """A negated view (``z.conj().imag``) has the negative bit set: the kernels must see its values."""
    z = torch.randn(2, 3, 5, 5, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    x, w = z.conj().imag, torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    assert x.is_neg()
    torch.testing.assert_close(adder2d(x, w, padding=1), adder2d(x.clone(), w, padding=1))
