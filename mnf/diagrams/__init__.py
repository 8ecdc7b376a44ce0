"""Block diagrams of the book's networks: boxes and arrows drawn with matplotlib.

One function per diagram; each returns a ``matplotlib.figure.Figure`` at most
:data:`mnf.plots.COLUMN_WIDTH` inches wide, made with ``pyplot``, so in a notebook a cell shows it
with ``plt.show()`` (returning it as the cell's value as well would show it twice).
The layers, channel counts and parameter counts in the boxes are read from the modules that
``mnf.models`` builds, so a diagram follows the code rather than a hand-written description:

- :func:`inverted_residual` -- MobileNetV2's block: 1×1 expansion, 3×3 depthwise, linear 1×1
  projection, shortcut (stride 1 and stride 2 side by side);
- :func:`adder_inverted_residual` -- the same block with adder layers, as in Urso (2022);
- :func:`ds_adder_resnet_block` -- ResNet-20's adder block and its depthwise-separable version;
- :func:`wht_layer_flow` -- the end of MobileNetV2 with a WHT layer in place of the last 1×1
  convolution (Gözler & Işık 2022, Fig. 3.7): pad, transform, soft threshold, inverse transform;
- :func:`variant_roles` -- which layer every model variant puts in each role (from
  :func:`variants`, which enumerates the options of ``mnf.models.policy``).

Colours: blue layers multiply, orange (adder) and green (WHT) layers do not, grey boxes are
batch norm, activations and pooling (batch norm multiplies at inference, ``a·x + b``).

The package, a file per part: :mod:`~mnf.diagrams.layers` (what a module is: :func:`kind_of`,
:func:`describe`, :func:`out_shape`), :mod:`~mnf.diagrams.canvas` (boxes, arrows, flows),
:mod:`~mnf.diagrams.blocks` (figures 1-3), :mod:`~mnf.diagrams.wht` (4), :mod:`~mnf.diagrams.roles` (5).
Import from ``mnf.diagrams``.
"""
from mnf.diagrams.blocks import adder_inverted_residual, ds_adder_resnet_block, inverted_residual
from mnf.diagrams.canvas import KINDS
from mnf.diagrams.layers import describe, kind_of, out_shape
from mnf.diagrams.roles import variant_roles, variants
from mnf.diagrams.wht import wht_layer_flow

__all__ = ["KINDS", "adder_inverted_residual", "describe", "ds_adder_resnet_block", "inverted_residual",
           "kind_of", "out_shape", "variant_roles", "variants", "wht_layer_flow"]
