"""A SIMD building block Numba cannot express in Python: an 8x8 transpose in vector registers.

``transpose8(src, s0, s_step, dst, d0, d_step)``, called from ``njit`` code on 1-D unit-stride
float32 or float64 arrays: ``dst[d0 + c * d_step + r] = src[s0 + r * s_step + c]`` for
``r, c < 8``. Eight 8-wide loads, 24 two-register shuffles, eight 8-wide stores; a scalar loop
moves the same 64 elements one at a time, with a store 4 or 8 bytes wide per element. Used to
switch between channel-first (NCHW) and channel-last layouts, which the adder kernels of
:mod:`mnf.adder.cpu` need: a scalar transposing loop is far slower than a plain copy, and the
packing runs on every call (``benchmarks/bench_adder.py``; ``book/notes/adder_kernels.md``).

The three shuffle stages are the classic 8x8 transpose network (interleave pairs of rows, then
pairs of pairs, then the two halves), written as generic ``shufflevector`` masks so LLVM picks the
instructions of the machine it compiles for.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_INTERLEAVE = ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15])
_PAIRS = ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])
_HALVES = ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])


def vector_pointer(builder: ir.IRBuilder, data: ir.Value, index: ir.Value, vty: ir.VectorType) -> ir.Value:
    """``&data[index]`` as a pointer to ``vty`` (for unaligned vector loads and stores)."""
    i64 = ir.IntType(64)
    if index.type != i64:
        index = builder.sext(index, i64)
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


def transpose8_network(rows: list, shuffle) -> list:
    """The eight columns of the 8x8 matrix whose rows are ``rows``, built only from
    ``shuffle(a, b, mask)`` (``concat(a, b)[mask]``): the intrinsic runs it on LLVM values, the
    tests on NumPy arrays."""
    a = []
    for i in range(0, 8, 2):
        a += [shuffle(rows[i], rows[i + 1], m) for m in _INTERLEAVE]
    b = []
    for base in (0, 4):
        a0, a1, a2, a3 = a[base:base + 4]
        b += [shuffle(a0, a2, _PAIRS[0]), shuffle(a0, a2, _PAIRS[1]),
              shuffle(a1, a3, _PAIRS[0]), shuffle(a1, a3, _PAIRS[1])]
    out = [None] * 8
    for j in range(4):
        out[j], out[j + 4] = (shuffle(b[j], b[j + 4], m) for m in _HALVES)
    return out



@intrinsic
def transpose8(typingctx, src, s0, s_step, dst, d0, d_step):
    """``dst[d0 + c * d_step + r] = src[s0 + r * s_step + c]`` for ``r, c < 8`` (see module doc)."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.ndim == dst.ndim == 1
            and src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        sty, _, _, dty, _, _ = signature.args
        vty = ir.VectorType(context.get_value_type(sty.dtype), 8)
        align = sty.dtype.bitwidth // 8
        sdata = context.make_array(sty)(context, builder, args[0]).data
        ddata = context.make_array(dty)(context, builder, args[3]).data
        i64 = ir.IntType(64)

        def ptr(data, start, step, k):  # &data[start + k * step]
            start, step = (v if v.type == i64 else builder.sext(v, i64) for v in (start, step))
            return vector_pointer(builder, data, builder.add(start, builder.mul(step, ir.Constant(i64, k))), vty)

        rows = [builder.load(ptr(sdata, args[1], args[2], r), align=align) for r in range(8)]

        def shuffle(a, b, mask):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

        for c, v in enumerate(transpose8_network(rows, shuffle)):
            builder.store(v, ptr(ddata, args[4], args[5], c), align=align)
        return context.get_dummy_value()

    return types.void(src, s0, s_step, dst, d0, d_step), codegen
