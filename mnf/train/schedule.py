"""The learning rate of every optimisation step: cosine, SGDR (warm restarts) or constant.

``lr_at(step, total_steps, steps_per_epoch, lr, schedule, sgdr_t0, sgdr_mult)``, for step ``i`` of ``T``
(``t`` = epochs done, fractional):

- ``"cosine"``: ``lr · ½(1 + cos(π i / T))``
- ``"sgdr"``: warm restarts (Loshchilov & Hutter 2017; seed 000 §3.4): the same cosine within
  periods of ``sgdr_t0``, ``sgdr_t0·sgdr_mult``, ... epochs, jumping back to ``lr`` at each restart.
- ``"constant"``: ``lr``.
"""
from __future__ import annotations

import math

from mnf import _check

SCHEDULES = ("cosine", "sgdr", "constant")


def lr_at(step: int, total_steps: int, steps_per_epoch: int, lr: float, schedule: str,
          sgdr_t0: float | None, sgdr_mult: float | None) -> float:
    """Learning rate of optimisation step ``step`` (0-based) of ``total_steps``; see the module doc.

    ``step >= 0``, ``total_steps >= 1`` and ``steps_per_epoch >= 1`` ints; ``lr`` finite, ``>= 0``.
    For ``"sgdr"`` only (the other schedules ignore them): ``sgdr_t0`` finite, ``> 0`` (epochs) and
    ``sgdr_mult`` finite, ``>= 1`` (each period at least as long as the one before; shorter ones
    would restart ever faster).  Constant time: the SGDR period holding ``step`` is found in
    closed form, not by stepping through the periods.
    """
    owner = "lr_at"
    step = _check.integer("step", step, 0, owner=owner)
    total_steps = _check.positive_int("total_steps", total_steps, owner)
    steps_per_epoch = _check.positive_int("steps_per_epoch", steps_per_epoch, owner)
    lr = _check.real("lr", lr, 0, owner=owner)
    _check.choice("schedule", schedule, SCHEDULES, owner)
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    sgdr_t0 = _check.real("sgdr_t0", sgdr_t0, 0, low_open=True, owner=owner)
    sgdr_mult = _check.real("sgdr_mult", sgdr_mult, 1, owner=owner)
    t, period = _sgdr_position(step / steps_per_epoch, sgdr_t0, sgdr_mult)
    return lr * 0.5 * (1 + math.cos(math.pi * t / period))


def _sgdr_position(t: float, t0: float, mult: float) -> tuple[float, float]:
    """``(t - start_k, t0 * mult**k)`` for the SGDR period ``k`` holding epoch ``t``: periods
    ``t0, t0·mult, ...`` start at ``start_k = t0 (mult**k - 1) / (mult - 1)`` (``k·t0`` for
    ``mult == 1``); a period counts as done ``1e-9`` epochs before its end (rounding)."""
    x = t + 1e-9
    if mult == 1:
        return math.fmod(x, t0) - 1e-9, t0

    def start(k: int) -> float:
        try:
            return t0 * (mult ** k - 1) / (mult - 1)
        except OverflowError:
            return math.inf

    ratio = x / t0 * (mult - 1)
    k = int(math.log1p(ratio) / math.log(mult)) if math.isfinite(ratio) else \
        int((math.log(x) - math.log(t0) + math.log(mult - 1)) / math.log(mult))
    while k > 0 and start(k) > x:      # rounding of the closed form: at most a step or two
        k -= 1
    while start(k + 1) <= x:
        k += 1
    return t - start(k), t0 * mult ** k

