"""Figures for the book: one explorer that works with and without a kernel.

A chapter draws a figure from parameters with ``draw(fig, **params)`` and shows it twice:

- :func:`interact` -- ipywidgets sliders, live in Jupyter and Colab.  Put this call in a cell
  tagged ``remove-output``: the built HTML has no kernel to drive widgets.
- :func:`animate` -- the same ``draw`` rendered for a list of values of one parameter into a
  self-contained JavaScript player (``to_jshtml``), so readers of the HTML book can explore too.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
from matplotlib import animation

Draw = Callable[..., None]


def interact(draw: Draw, figsize: tuple[float, float] = (6.8, 3), **sliders: Any):
    """Live sliders (ipywidgets) driving ``draw(fig, **params)``; ``sliders`` as in ``ipywidgets.interact``."""
    import ipywidgets

    def show(**params: Any) -> None:
        fig = plt.figure(figsize=figsize)
        draw(fig, **params)
        plt.show()

    return ipywidgets.interact(show, **sliders)


def animate(draw: Draw, name: str, values: Sequence[Any], figsize: tuple[float, float] = (6.8, 3),
            interval: int = 600, **fixed: Any):
    """A kernel-free player over ``values`` of parameter ``name``; returns an ``IPython.display.HTML``."""
    from IPython.display import HTML

    if len(values) == 0:
        raise ValueError(f"animate needs at least one value for {name!r}, got none")
    fig = plt.figure(figsize=figsize)

    def frame(value: Any) -> list:
        fig.clear()
        draw(fig, **{name: value}, **fixed)
        return []

    anim = animation.FuncAnimation(fig, frame, frames=list(values), interval=interval, blit=False)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return HTML(html)


# The book's text column is about 690 px; matplotlib saves at 100 dpi, so a figure up to this many
# inches wide is shown at (nearly) its own size and its 9-10 pt labels stay legible.
COLUMN_WIDTH = 6.8


def style() -> None:
    """Set matplotlib defaults for the book: figures one column wide, labels legible at that width.

    ``mnf.chapter`` calls this; a figure wider than :data:`COLUMN_WIDTH` inches is shrunk by the page
    and its labels with it, so chapters keep ``figsize`` widths at or below it.
    """
    plt.rcParams.update({
        "figure.figsize": (COLUMN_WIDTH, 3.0),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "font.size": 10,
        "axes.titlesize": 10.5,
        "axes.labelsize": 10,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 9,
        "figure.titlesize": 11,
    })
