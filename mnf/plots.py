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


def interact(draw: Draw, figsize: tuple[float, float] = (8, 3), **sliders: Any):
    """Live sliders (ipywidgets) driving ``draw(fig, **params)``; ``sliders`` as in ``ipywidgets.interact``."""
    import ipywidgets

    def show(**params: Any) -> None:
        fig = plt.figure(figsize=figsize)
        draw(fig, **params)
        plt.show()

    return ipywidgets.interact(show, **sliders)


def animate(draw: Draw, name: str, values: Sequence[Any], figsize: tuple[float, float] = (8, 3),
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
