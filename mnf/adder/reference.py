"""Adder convolution in plain NumPy loops: the readable definition of every kernel in ``mnf.adder``.

Shapes: ``x`` (N, C, H, W), ``w`` (O, C/groups, kh, kw), ``grad`` (N, O, OH, OW) with
``OH = output_size(H, kh, s, p)`` (same for OW). Output channel ``o`` sees the input channels of
its group ``g = o // (O/groups)``. Zero padding is literal: a padded position is an input of 0.

    Y[n,o,y,x]  = -sum_{c,i,j} |Xp[n,c,ys+i,xs+j] - w[o,c,i,j]|          (eq. 3.1)
    dL/dw[o]   += G[n,o,y,x] * (patch - w[o])   or  * sign(patch - w[o])  (eq. 3.4 / 3.3)
    dL/dpatch  += G[n,o,y,x] * HardTanh(w[o] - patch)                     (eq. 3.5-3.6)
"""
import numpy as np

from mnf.adder.shape import output_size


def _setup(x, w, stride, padding, groups):
    n, c, h, width = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = output_size(h, kh, stride, padding), output_size(width, kw, stride, padding)
    return xp, n, o, cg, o // groups, kh, kw, oh, ow


def forward(x, w, stride=1, padding=0, groups=1):
    """Adder output ``Y`` (N, O, OH, OW)."""
    xp, n, o, cg, og, kh, kw, oh, ow = _setup(x, w, stride, padding, groups)
    y = np.zeros((n, o, oh, ow), x.dtype)
    for b, k, r, q in np.ndindex(n, o, oh, ow):
        c0 = (k // og) * cg
        patch = xp[b, c0:c0 + cg, r * stride:r * stride + kh, q * stride:q * stride + kw]
        y[b, k, r, q] = -np.abs(patch - w[k]).sum()
    return y


def grad_input(x, w, grad, stride=1, padding=0, groups=1):
    """Surrogate input gradient (N, C, H, W): HardTanh(w - x) weighted by ``grad``."""
    xp, n, o, cg, og, kh, kw, oh, ow = _setup(x, w, stride, padding, groups)
    dxp = np.zeros_like(xp)
    for b, k, r, q in np.ndindex(n, o, oh, ow):
        c0, r0, q0 = (k // og) * cg, r * stride, q * stride
        patch = xp[b, c0:c0 + cg, r0:r0 + kh, q0:q0 + kw]
        dxp[b, c0:c0 + cg, r0:r0 + kh, q0:q0 + kw] += grad[b, k, r, q] * np.clip(w[k] - patch, -1, 1)
    return dxp[:, :, padding:padding + x.shape[2], padding:padding + x.shape[3]]


def grad_weight(x, w, grad, stride=1, padding=0, groups=1, sign=False):
    """Filter gradient (O, C/groups, kh, kw): full precision ``x - w``, or ``sign(x - w)``."""
    xp, n, o, cg, og, kh, kw, oh, ow = _setup(x, w, stride, padding, groups)
    dw = np.zeros_like(w)
    for b, k, r, q in np.ndindex(n, o, oh, ow):
        c0 = (k // og) * cg
        diff = xp[b, c0:c0 + cg, r * stride:r * stride + kh, q * stride:q * stride + kw] - w[k]
        dw[k] += grad[b, k, r, q] * (np.sign(diff) if sign else diff)
    return dw
