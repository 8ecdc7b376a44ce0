"""mnf.transforms: orderings vs their definitions, every fwht path vs the dense matrix."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import mnf.transforms as T
from mnf.transforms.reference import fwht_reference

ORDERS = T.ORDERS


def dense(x, dim, order, normalized, inverse=False):
    """The definition: x @ M.T along dim (M / n or M for the inverse)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[dim]
    m = T.transform_matrix(n, order, normalized)
    if inverse:
        m = m.T if normalized else m.T / n
    return np.moveaxis(np.moveaxis(x, dim, -1) @ m.T, -1, dim)


# ---------------------------------------------------------------- matrices and orderings
@pytest.mark.parametrize("n", [1, 2, 4, 8, 64, 256])
def test_matrices_match_definitions(n):
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    popcount = np.vectorize(lambda v: bin(v).count("1"))
    h = T.hadamard(n)
    np.testing.assert_array_equal(h, (-1.0) ** popcount(i & j))
    np.testing.assert_array_equal(T.sequency(T.walsh(n)), np.arange(n))
    np.testing.assert_array_equal(T.dyadic(n), h[T.bit_reverse(np.arange(n), n.bit_length() - 1)])
    for order in ORDERS:
        m = T.transform_matrix(n, order)
        np.testing.assert_array_equal(m, m.T)                 # symmetric
        np.testing.assert_array_equal(m @ m, n * np.eye(n))   # M M = n I
        mn = T.transform_matrix(n, order, normalized=True)
        np.testing.assert_allclose(mn @ mn, np.eye(n), atol=1e-12)
    assert T.hadamard(4, dtype=np.float32).dtype == np.float32


def test_sylvester_recursion():
    h4 = T.hadamard(4)
    np.testing.assert_array_equal(T.hadamard(8), np.block([[h4, h4], [h4, -h4]]))


@pytest.mark.parametrize("k", range(11))
def test_walsh_permutation_is_sort_by_sign_changes(k):
    n = 1 << k
    h = T.hadamard(n)
    by_sort = np.argsort(T.sequency(h), kind="stable")
    np.testing.assert_array_equal(T.walsh_permutation(n), by_sort)
    np.testing.assert_array_equal(T.walsh(n), h[T.walsh_permutation(n)])
    np.testing.assert_array_equal(T.dyadic(n), h[T.dyadic_permutation(n)])


def test_gray_code_and_bit_reverse():
    np.testing.assert_array_equal(T.gray_code(8), [0, 1, 3, 2, 6, 7, 5, 4])
    np.testing.assert_array_equal(T.bit_reverse([0, 1, 2, 3, 4, 5, 6, 7], 3), [0, 4, 2, 6, 1, 5, 3, 7])
    g = T.gray_code(1024)
    assert np.all(np.bitwise_count((g[1:] ^ g[:-1]).astype(np.uint64)) == 1)
    assert T.next_power_of_two(1) == 1 and T.next_power_of_two(5) == 8 and T.next_power_of_two(8) == 8


@pytest.mark.parametrize("bad, msg", [(3, "got 3"), (0, "got 0"), (-4, "got -4"), (4.0, "got 4.0"),
                                      ("8", "got '8'"), (True, "got True")])
def test_bad_sizes(bad, msg):
    for fn in (T.hadamard, T.walsh, T.dyadic, T.walsh_permutation, T.dyadic_permutation):
        with pytest.raises(ValueError, match=msg):
            fn(bad)
    with pytest.raises(ValueError, match="power of two"):
        T.transform_matrix(bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="order must be one of"):
        T.transform_matrix(4, "sequency")
    with pytest.raises(ValueError, match=r"got 6 \(pad to 8\)"):
        T.fwht(np.ones(6))
    with pytest.raises(ValueError, match="dim must be an int in"):
        T.fwht(np.ones((2, 4)), dim=2)
    with pytest.raises(ValueError, match="multiple of block_size=4, got 6"):
        T.block_fwht(np.ones(6), 4)
    with pytest.raises(ValueError, match="block_size must be a power of two"):
        T.block_fwht(np.ones(6), 3)
    with pytest.raises(ValueError, match=r"x must be a float32 or float64 tensor .*got torch.int64"):
        T.fwht(torch.ones(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="got torch.complex64"):
        T.ifwht(torch.ones(4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="different axes"):
        T.fwht2d(np.ones((4, 4)), dims=(0, -2))


# ---------------------------------------------------------------- fwht vs the dense matrix
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32, 256, 2048, 8192])
def test_fwht_rows_vs_dense(n, order, normalized):
    x = np.random.default_rng(n).standard_normal((3, n))
    y = T.fwht(x, order=order, normalized=normalized)
    if n <= 2048:
        np.testing.assert_allclose(y, dense(x, -1, order, normalized), atol=1e-9 * n)
    np.testing.assert_allclose(fwht_reference(x, order, normalized), y, atol=1e-9 * n)  # n > BLOCK
    np.testing.assert_allclose(T.ifwht(y, order=order, normalized=normalized), x, atol=1e-12 * n)


@pytest.mark.parametrize("shape, dim", [((2, 8, 3, 5), 1), ((2, 8, 3, 5), -3), ((4, 3), 0),
                                        ((16, 2, 64), 0), ((3, 5, 32), -1), ((2, 3, 4, 16), 3)])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_fwht_any_dim(shape, dim, order, lib):
    x = np.random.default_rng(0).standard_normal(shape)
    xin = torch.from_numpy(x) if lib == "torch" else x
    for normalized in (False, True):
        y = T.fwht(xin, dim, order, normalized)
        np.testing.assert_allclose(np.asarray(y), dense(x, dim, order, normalized), atol=1e-9)
        np.testing.assert_allclose(np.asarray(T.ifwht(y, dim, order, normalized)), x, atol=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_strided_inputs(order):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 40, 20))
    for x in (base[::2, 3:35, ::3], base[:, ::2, 1:17].transpose(2, 0, 1), base[::-1, :32, ::-2]):
        for dim in range(3):
            if x.shape[dim] & (x.shape[dim] - 1) == 0:
                want = dense(x, dim, order, True)
                np.testing.assert_allclose(T.fwht(x, dim, order, True), want, atol=1e-12)
                if np.all(np.array(x.strides) > 0):
                    t = torch.from_numpy(np.ascontiguousarray(base))[::2, 3:35, ::3]
                    if t.shape == x.shape:
                        np.testing.assert_allclose(T.fwht(t, dim, order, True).numpy(),
                                                   want, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [8, 16, 32, 64, 128, 4096, 8192])
def test_row_kernel_simd_and_scalar_paths_agree(n, dtype):
    """Unit-stride rows take the SIMD-register stages, strided rows the scalar ones: the same
    additions in the same order, so the results must be equal bit for bit, and equal the dense
    product (orderings and scaling included)."""
    from mnf.transforms import cpu
    rng = np.random.default_rng(n)
    wide = rng.standard_normal((5, 2 * n)).astype(dtype)
    strided, unit = wide[:, ::2], np.ascontiguousarray(wide[:, ::2])
    assert strided.strides[1] != strided.itemsize and unit.strides[1] == unit.itemsize
    perm = np.random.default_rng(0).permutation(n)
    for p, scale in ((np.empty(0, np.int64), 1.0), (np.empty(0, np.int64), 0.5), (perm, 0.25)):
        got = []
        for x in (unit, strided):
            for kernel in (cpu.fwht_rows, cpu.fwht_rows_serial):
                out = np.empty(x.shape, dtype)
                kernel(x, out, p, dtype(scale), 3)
                got.append(out)
        for other in got[1:]:
            np.testing.assert_array_equal(got[0], other)
        want = (unit.astype(np.float64) @ T.hadamard(n)) * scale
        want = want[:, p] if len(p) else want
        np.testing.assert_allclose(got[0], want, rtol=0, atol=(1e-4 if dtype == np.float32 else 1e-11) * n)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_nchw_channel_dim(memory_format, dtype):
    x = torch.randn(2, 64, 5, 3, dtype=torch.float64).to(dtype=dtype, memory_format=memory_format)
    for order in ORDERS:
        y = T.fwht(x, dim=1, order=order, normalized=True)
        assert y.dtype == dtype and y.device == x.device and y.shape == x.shape
        assert y.is_contiguous(memory_format=memory_format)
        want = dense(x.double().numpy(), 1, order, True)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        np.testing.assert_allclose(y.double().numpy(), want, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fn", [T.fwht, T.ifwht])
def test_torch_half_computes_in_float32(fn, dtype):
    """Half inputs are transformed in float32 (result float32); the gradient keeps x's dtype."""
    x = torch.randn(2, 16, 3).to(dtype).requires_grad_()
    for order in ORDERS:
        y = fn(x, dim=1, order=order, normalized=order == "walsh")
        assert y.dtype == torch.float32 and y.shape == x.shape
        torch.testing.assert_close(y, fn(x.detach().float(), dim=1, order=order,
                                         normalized=order == "walsh"), rtol=0, atol=0)
        g = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, g)
        assert gx.dtype == dtype
        want = fn(g, dim=1, order=order, normalized=order == "walsh").to(dtype)
        torch.testing.assert_close(gx, want)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast leaves the transform alone
        assert fn(x, dim=1).dtype == torch.float32


def test_numpy_dtypes():
    x = np.arange(8)
    assert T.fwht(x).dtype == np.float64
    assert T.fwht(x.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(T.fwht(x), dense(x, -1, "hadamard", False))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_pad(lib):
    x = np.random.default_rng(2).standard_normal((3, 5, 2))
    xin = torch.from_numpy(x) if lib == "torch" else x
    y = np.asarray(T.fwht(xin, dim=1, order="walsh", pad=True))
    assert y.shape == (3, 8, 2)
    xp = np.pad(x, [(0, 0), (0, 3), (0, 0)])
    np.testing.assert_allclose(y, dense(xp, 1, "walsh", False), atol=1e-12)
    np.testing.assert_allclose(np.asarray(T.ifwht(y, dim=1, order="walsh", pad=True)), xp, atol=1e-12)
    assert np.asarray(T.fwht(xin, dim=2, pad=True)).shape == (3, 5, 2)  # already a power of two


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("order", ORDERS)
def test_fwht2d_and_blocks(lib, order):
    x = np.random.default_rng(3).standard_normal((2, 8, 16))
    xin = torch.from_numpy(x) if lib == "torch" else x
    m0, m1 = T.transform_matrix(8, order, True), T.transform_matrix(16, order, True)
    y = np.asarray(T.fwht2d(xin, order=order, normalized=True))
    np.testing.assert_allclose(y, m0 @ x @ m1.T, atol=1e-12)
    np.testing.assert_allclose(np.asarray(T.ifwht2d(y, order=order, normalized=True)), x, atol=1e-12)
    y = np.asarray(T.fwht2d(xin, dims=(2, 0), order=order))
    np.testing.assert_allclose(y, dense(dense(x, 2, order, False), 0, order, False), atol=1e-12)
    big = np.kron(np.eye(4), T.transform_matrix(4, order))
    yb = np.asarray(T.block_fwht(xin, 4, dim=-1, order=order))
    np.testing.assert_allclose(yb, x @ big.T, atol=1e-12)
    np.testing.assert_allclose(np.asarray(T.block_ifwht(yb, 4, dim=-1, order=order)), x, atol=1e-12)
    yb = np.asarray(T.block_fwht(xin, 2, dim=1, order=order, normalized=True))
    big = np.kron(np.eye(4), T.transform_matrix(2, order, True))
    np.testing.assert_allclose(yb, dense(x, 1, order, False) * 0 + np.einsum("ij,bjk->bik", big, x),
                               atol=1e-12)


# ---------------------------------------------------------------- torch autograd
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("fn", [T.fwht, T.ifwht])
def test_gradcheck(order, fn):
    x = torch.randn(3, 8, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fn(t, 1, order, False), (x,))
    assert torch.autograd.gradcheck(lambda t: fn(t, -1, order, True, pad=False), (x,))
    assert torch.autograd.gradcheck(lambda t: fn(t[:, :5], 1, order, True, pad=True), (x,))
    if order == "walsh":
        assert torch.autograd.gradgradcheck(lambda t: fn(t, 1, order, True), (x,))


def test_no_grad_and_module():
    class Wht(torch.nn.Module):
        def forward(self, x):
            return T.fwht(x, dim=1, order="walsh", normalized=True)

    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    with torch.no_grad():
        y = Wht()(x)
    assert not y.requires_grad
    y = Wht()(x)
    y.square().sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach(), atol=1e-5, rtol=1e-5)  # orthogonal


# ---------------------------------------------------------------- properties (hypothesis)
arrays = st.tuples(st.integers(0, 9), st.integers(1, 3), st.sampled_from(ORDERS),
                   st.integers(0, 2**31 - 1))


@settings(max_examples=40, deadline=None)
@given(arrays)
def test_properties(case):
    k, batch, order, seed = case
    n = 1 << k
    rng = np.random.default_rng(seed)
    x, z = rng.standard_normal((2, batch, n))
    a, b = rng.standard_normal(2)
    y = T.fwht(x, order=order, normalized=True)
    np.testing.assert_allclose(y, dense(x, -1, order, True), atol=1e-10)                 # dense
    np.testing.assert_allclose((y ** 2).sum(-1), (x ** 2).sum(-1), rtol=1e-10)            # Parseval
    np.testing.assert_allclose(T.fwht(y, order=order, normalized=True), x, atol=1e-10)    # M M = I
    np.testing.assert_allclose(T.ifwht(T.fwht(x, order=order), order=order), x, atol=1e-10)
    lin = T.fwht(a * x + b * z, order=order)
    np.testing.assert_allclose(lin, a * T.fwht(x, order=order) + b * T.fwht(z, order=order), atol=1e-9)
    yt = T.fwht(torch.from_numpy(x.T.copy()).T, order=order, normalized=True)             # strided
    np.testing.assert_allclose(yt.numpy(), y, atol=1e-10)
    yc = T.fwht(x.T, dim=0, order=order, normalized=True)                                 # columns
    np.testing.assert_allclose(yc, y.T, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 11), st.sampled_from(ORDERS))
def test_orthogonality(k, order):
    m = T.transform_matrix(1 << k, order, normalized=True)
    np.testing.assert_allclose(m @ m.T, np.eye(1 << k), atol=1e-12)


# ---------------------------------------------------------------- Numba kernels
@njit(cache=True)
def _butterfly_rows(x):
    for r in range(x.shape[0]):
        T.butterfly_(x[r])


def test_butterfly_inline_from_njit():
    rows = _butterfly_rows
    for n in (1, 2, 4, 8, 64, 4096, 8192):
        x = np.random.default_rng(n).standard_normal((2, n))
        want = x @ T.hadamard(n)
        rows(x)
        np.testing.assert_allclose(x, want, atol=1e-9 * n)


def test_cuda_kernels_compile_to_ptx():
    from numba import cuda, float32, float64, int64, void

    from mnf.transforms import cuda as K

    for nb, shared in ((float32, K.shared_f32), (float64, K.shared_f64)):
        for layout in ("A", "C"):
            arr = nb[:, :, :] if layout == "A" else nb[:, :, ::1]
            kernels = [(shared, (arr, arr, int64[::1], nb)),
                       (K.stage4, (arr, arr, int64)), (K.stage2, (arr, arr, int64)),
                       (K.gather_scale, (arr, arr, int64[::1], nb))]
            for kernel, sig in kernels:
                ptx, _ = cuda.compile_ptx(kernel.py_func, void(*sig), cc=(7, 5))
                assert ".entry" in ptx
