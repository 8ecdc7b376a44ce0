"""Activation-based pruning of neurons and channels (Çallı 2017 §1.5.2–1.5.3, after Hu et al. 2016).

Feed data through a trained network, count for every hidden unit how often its ReLU output is
positive, and delete the units whose count is at most a threshold -- the unit's row of the layer
that produces it, its batch-norm entries, and its column of the layer that reads it -- so the
rebuilt layers are really smaller.  A unit that never fires contributes exactly zero downstream,
so removing it leaves the network's function unchanged.

Units are found as *chains* inside an ``nn.Sequential`` (modules in call order):

============  =======================================================================  ============
kind          modules                                                                  unit counted
============  =======================================================================  ============
``linear``    ``Linear → [BatchNorm1d] → ReLU/ReLU6 → [Dropout] → Linear``             output of the activation
``conv``      ``Conv2d → [BatchNorm2d] → ReLU/ReLU6 → Conv2d``                         (per channel,
``expand``    ``Conv2d → [BN] → act → depthwise Conv2d → [BN] → act → Conv2d``         all positions)
============  =======================================================================  ============

``expand`` is MobileNetV2's inverted residual body: an expansion channel lives in the expansion
conv, its BN, the depthwise conv and its BN, and the projection's input; it is counted after the
second activation (what the projection reads).  Conv2d layers must be ungrouped except the
depthwise one.  With ``fold=True`` the removed unit's mean output (over the data) is added to the
reading layer's bias, which is exact for dead units (mean 0) and for units with a constant output
(for a k×k reader with zero padding, away from the border).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from mnf import _check
from mnf.metrics import as_input, model_device, model_dtype, probe

ACTIVATIONS = (nn.ReLU, nn.ReLU6)


@dataclass
class Chain:
    """A prunable group of units: the modules' indices in ``parent`` and what plays which role."""

    name: str                      # qualified name of the producing layer
    kind: str                      # "linear" | "conv" | "expand"
    parent: nn.Sequential
    producer: int
    bn: int | None
    act: int                       # the activation whose output is counted
    consumer: int
    depthwise: int | None = None
    bn2: int | None = None

    @property
    def units(self) -> int:
        p = self.parent[self.producer]
        return p.out_features if isinstance(p, nn.Linear) else p.out_channels


@dataclass
class UnitStats:
    """Per-unit statistics of one chain's counted activation over the data."""

    counts: Tensor                 # (units,) int64: positions where the output was > 0
    mean: Tensor                   # (units,) float64: mean output
    positions: int                 # positions seen per unit (images × pixels)


@dataclass
class PruneRow:
    name: str
    kind: str
    units_before: int
    units_after: int
    counts: Tensor


@dataclass
class PruneReport:
    """Per-chain units before / after and the model's parameter count before / after."""

    rows: list[PruneRow] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0

    @property
    def removed(self) -> int:
        return sum(r.units_before - r.units_after for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{'chain':<32}{'kind':>8}{'units':>14}"]
        lines += [f"{r.name:<32}{r.kind:>8}{f'{r.units_before} → {r.units_after}':>14}" for r in self.rows]
        lines.append(f"parameters {self.params_before:,} → {self.params_after:,} "
                     f"({1 - self.params_after / max(1, self.params_before):.1%} fewer)")
        return "\n".join(lines)


def _plain_conv(m: nn.Module) -> bool:
    return type(m) is nn.Conv2d and m.groups == 1


def _depthwise(m: nn.Module, channels: int) -> bool:
    return (type(m) is nn.Conv2d and m.groups == channels == m.in_channels == m.out_channels)


def _chain_at(seq: nn.Sequential, i: int, prefix: str) -> Chain | str:
    """The chain produced by ``seq[i]``, or a string saying why there is none."""
    mods = list(seq)
    p = mods[i]
    linear = type(p) is nn.Linear
    if not (linear or _plain_conv(p)):
        kind = type(p).__name__
        extra = f" with groups={p.groups}" if isinstance(p, nn.Conv2d) else ""
        return (f"{kind}{extra} is not a layer activation pruning can rebuild (nn.Linear or ungrouped "
                "nn.Conv2d; adder and WHT layers are not supported)")
    bn_type = nn.BatchNorm1d if linear else nn.BatchNorm2d
    j, bn = i + 1, None
    if j < len(mods) and type(mods[j]) is bn_type:
        bn, j = j, j + 1
    if not (j < len(mods) and isinstance(mods[j], ACTIVATIONS)):
        found = type(mods[j]).__name__ if j < len(mods) else "the end of the Sequential"
        return f"expected ReLU/ReLU6 after it{' and its BN' if bn is not None else ''}, found {found}"
    act, j = j, j + 1
    if linear:
        while j < len(mods) and isinstance(mods[j], nn.Dropout):
            j += 1
        if j < len(mods) and type(mods[j]) is nn.Linear:
            return Chain(prefix + str(i), "linear", seq, i, bn, act, j)
        found = type(mods[j]).__name__ if j < len(mods) else "the end of the Sequential"
        return f"its units are read by {found}, not by an nn.Linear in the same Sequential"
    if j < len(mods) and _plain_conv(mods[j]):
        return Chain(prefix + str(i), "conv", seq, i, bn, act, j)
    if j < len(mods) and _depthwise(mods[j], p.out_channels):
        dw, j = j, j + 1
        bn2 = None
        if j < len(mods) and type(mods[j]) is nn.BatchNorm2d:
            bn2, j = j, j + 1
        if j + 1 < len(mods) and isinstance(mods[j], ACTIVATIONS) and _plain_conv(mods[j + 1]):
            return Chain(prefix + str(i), "expand", seq, i, bn, j, j + 1, depthwise=dw, bn2=bn2)
        return "the depthwise conv after it is not followed by [BN] → ReLU/ReLU6 → ungrouped Conv2d"
    found = type(mods[j]).__name__ if j < len(mods) else "the end of the Sequential"
    return f"its channels are read by {found}, not by an ungrouped or depthwise nn.Conv2d in the same Sequential"


def find_chains(model: nn.Module) -> list[Chain]:
    """Every prunable chain in ``model`` (see the module doc), in ``named_modules`` order."""
    chains = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        prefix = f"{name}." if name else ""
        for i in range(len(seq)):
            chain = _chain_at(seq, i, prefix)
            if isinstance(chain, Chain):
                chains.append(chain)
    return chains


def _inputs(data: Any, batch_size: int = 256) -> Iterable[Tensor]:
    """Batches of model inputs from ``data``, each checked: a tensor of finite values (a NaN or
    infinite input would turn the activation statistics, and through ``fold`` the model, to NaN)."""
    if isinstance(data, Tensor):
        if data.dim() == 0:
            raise ValueError("activation_counts: data must be a batch of inputs (N, ...), got a 0-d tensor")
        _check.finite_tensor("data", data, "activation_counts", "inputs")
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise _check.ArgumentTypeError(f"activation_counts: data must be a tensor of inputs or an iterable of "
                                       f"batches, got {type(data).__name__}")
    for item in data:
        x = item[0] if isinstance(item, (tuple, list)) and item else item
        _check.tensor("data's batches", x, "activation_counts")
        _check.finite_tensor("data's batches", x, "activation_counts", "inputs")
        yield x


def activation_counts(model: nn.Module, data: Any, chains: list[Chain] | None = None) -> dict[str, UnitStats]:
    """Run ``data`` through ``model`` and count each chain's positive outputs per unit.

    ``data``: a float tensor of model inputs (run in batches of 256), or an iterable of tensors or
    of ``(inputs, ...)`` tuples (e.g. :func:`mnf.data.batches`), on any device.  Every batch is
    moved to the model's device and cast to its floating dtype (:mod:`mnf.metrics`); uint8 images
    raise ValueError (normalise them first: ``mnf.data.normalize(images)``).  Runs in eval mode
    under ``no_grad``; modes and hooks are restored / removed afterwards, also when the model
    raises.  The counts are accumulated on the model's device; the returned statistics are CPU
    tensors.
    """
    _check.module("model", model, "activation_counts")
    chains = find_chains(model) if chains is None else chains
    stats: dict[str, list] = {c.name: [0, 0.0, 0] for c in chains}

    def hook(name: str):
        def record(module, inputs, out):
            dims = [d for d in range(out.dim()) if d != 1]
            s = stats[name]
            s[0] = s[0] + (out > 0).sum(dims)
            s[1] = s[1] + out.double().sum(dims)
            s[2] += out.numel() // out.shape[1]
        return record

    device, dtype = model_device(model), model_dtype(model)
    with probe(model, [(c.parent[c.act], hook(c.name)) for c in chains]):
        for x in _inputs(data):
            model(as_input(x, device, dtype))
    out = {}
    for c in chains:
        count, total, seen = stats[c.name]
        if seen == 0:
            raise ValueError(f"{c.name}: its activation never ran; is the data empty or the chain unused?")
        mean = (total / seen).cpu()
        if not bool(torch.isfinite(mean).all()):
            raise ValueError(f"{c.name}: its activations are NaN or infinite on this data (the model's weights "
                             "are not finite, or overflow); counting them would prune at random")
        out[c.name] = UnitStats(count.cpu(), mean, seen)
    return out


# ----------------------------------------------------------------------- rebuilding smaller layers

def _slice_out(m: nn.Module, keep: Tensor) -> nn.Module:
    """A copy of Linear / Conv2d ``m`` keeping output units ``keep`` (depthwise: its channels too)."""
    k = len(keep)
    w = m.weight.detach()[keep]
    bias = m.bias is not None
    kw = dict(device=w.device, dtype=w.dtype)
    if isinstance(m, nn.Linear):
        new = nn.Linear(m.in_features, k, bias=bias, **kw)
    else:
        depthwise = m.groups > 1
        new = nn.Conv2d(k if depthwise else m.in_channels, k, m.kernel_size, m.stride, m.padding,
                        m.dilation, groups=k if depthwise else 1, bias=bias, padding_mode=m.padding_mode, **kw)
    new.weight.data.copy_(w)
    if bias:
        new.bias.data.copy_(m.bias.detach()[keep])
    return new


def _slice_in(m: nn.Module, keep: Tensor, removed: Tensor, mean: Tensor | None) -> nn.Module:
    """A copy of Linear / Conv2d ``m`` reading only inputs ``keep``; folds removed inputs' means into its bias."""
    w = m.weight.detach()
    kw = dict(device=w.device, dtype=w.dtype)
    shift = None
    if mean is not None and len(removed):
        cols = w[:, removed]
        if cols.dim() > 2:
            cols = cols.sum(dim=tuple(range(2, cols.dim())))
        shift = cols.double() @ mean.to(device=cols.device, dtype=torch.float64)[removed]
        if not torch.any(shift != 0):
            shift = None
    bias = m.bias is not None or shift is not None
    if isinstance(m, nn.Linear):
        new = nn.Linear(len(keep), m.out_features, bias=bias, **kw)
    else:
        new = nn.Conv2d(len(keep), m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                        bias=bias, padding_mode=m.padding_mode, **kw)
    new.weight.data.copy_(w[:, keep])
    if bias:
        b = m.bias.detach().double() if m.bias is not None else torch.zeros(m.weight.shape[0], dtype=torch.float64,
                                                                                   device=w.device)
        if shift is not None:
            b = b + shift
        new.bias.data.copy_(b.to(w.dtype))
    return new


def _slice_bn(bn: nn.modules.batchnorm._BatchNorm, keep: Tensor) -> nn.Module:
    ref = next((t for t in (bn.running_mean, bn.weight) if t is not None), None)
    kw = dict(device=ref.device, dtype=ref.dtype) if ref is not None else dict(device=keep.device)
    new = type(bn)(len(keep), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                   track_running_stats=bn.track_running_stats, **kw)
    if bn.affine:
        new.weight.data.copy_(bn.weight.detach()[keep])
        new.bias.data.copy_(bn.bias.detach()[keep])
    if bn.track_running_stats:
        new.running_mean.copy_(bn.running_mean[keep])
        new.running_var.copy_(bn.running_var[keep])
        new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


def prune_chain(chain: Chain, keep: Tensor, mean: Tensor | None = None) -> None:
    """Rebuild the chain's layers in place keeping units ``keep`` (indices; ``mean``: the units'
    mean outputs to fold, ``(units,)``).  Both may be on any device: the new layers are built on
    the old ones' device and dtype."""
    _check.instance("chain", chain, Chain, "a Chain (mnf.compress.find_chains)", "prune_chain")
    _check.tensor("keep", keep, "prune_chain", ndim=1)
    if keep.is_floating_point() or keep.dtype == torch.bool:
        raise _check.ArgumentTypeError(f"prune_chain: keep must be an integer tensor of unit indices, got {keep.dtype}")
    if len(keep) == 0 or int(keep.min()) < 0 or int(keep.max()) >= chain.units or len(keep.unique()) != len(keep):
        raise ValueError(f"prune_chain: keep must be distinct unit indices in 0..{chain.units - 1}, at least one, "
                         f"got {keep.tolist() if len(keep) <= 20 else f'{len(keep)} indices'}")
    if mean is not None and (_check.tensor("mean", mean, "prune_chain").shape != (chain.units,)
                             or not bool(torch.isfinite(mean).all())):
        raise ValueError(f"prune_chain: mean must be ({chain.units},) finite unit means, got shape {tuple(mean.shape)}")
    seq = chain.parent
    keep = keep.sort().values.to(seq[chain.producer].weight.device)
    mask = torch.ones(chain.units, dtype=torch.bool, device=keep.device)
    mask[keep] = False
    removed = torch.nonzero(mask).flatten()

    def put(index: int, new: nn.Module) -> None:
        new.train(seq[index].training)
        seq[index] = new

    put(chain.producer, _slice_out(seq[chain.producer], keep))
    if chain.bn is not None:
        put(chain.bn, _slice_bn(seq[chain.bn], keep))
    if chain.depthwise is not None:
        put(chain.depthwise, _slice_out(seq[chain.depthwise], keep))
    if chain.bn2 is not None:
        put(chain.bn2, _slice_bn(seq[chain.bn2], keep))
    put(chain.consumer, _slice_in(seq[chain.consumer], keep, removed, mean))


def prune(model: nn.Module, data: Any, threshold: float = 0, *, rate: float | None = None,
          layers: Iterable[str] | None = None, fold: bool = True, min_units: int = 1) -> PruneReport:
    """Remove, in place, units whose activation count over ``data`` is ``<= threshold``.

    data        model inputs as for :func:`activation_counts` (any device: each batch is moved to
                the model's device and dtype; the rebuilt layers stay on the model's device).
    threshold   a count: units positive at no more than this many positions are removed
                (0: only units that never fire, which keeps the function identical).
    rate        instead of ``threshold``: remove units positive at no more than this fraction
                of the positions seen.
    layers      names of producing layers to prune (``model.named_modules()`` names, e.g.
                ``"features.3.body.0"``); a name that does not start a supported chain raises
                ValueError saying why.  ``None``: every chain :func:`find_chains` finds.
    fold        add each removed unit's mean output to the reading layer's bias.
    min_units   never leave a chain with fewer units (the most active are kept).

    ``threshold`` finite, >= 0; ``rate`` in [0, 1]; ``min_units`` an int >= 1; ``data`` finite
    (a NaN or infinite input, or activations that are, raise ``ValueError``: their statistics
    would prune at random and ``fold`` would write NaN into the model).  Nothing is changed
    before every argument has passed.
    """
    owner = "prune"
    _check.module("model", model, owner)
    _check.real("threshold", threshold, 0, owner=owner)
    _check.optional_real("rate", rate, 0, 1, owner=owner)
    _check.flag("fold", fold, owner)
    min_units = _check.positive_int("min_units", min_units, owner)
    if layers is not None and (isinstance(layers, str) or not isinstance(layers, Iterable)):
        raise _check.ArgumentTypeError(f"{owner}: layers must be an iterable of layer names or None, got {layers!r}")
    chains = find_chains(model)
    if layers is not None:
        by_name = {c.name: c for c in chains}
        modules = dict(model.named_modules())
        selected = []
        for n in layers:
            if n in by_name:
                selected.append(by_name[n])
                continue
            if n not in modules:
                raise ValueError(f"no layer named {n!r} in {type(model).__name__}")
            parent_name, _, idx = n.rpartition(".")
            parent = modules.get(parent_name) if parent_name else model
            if not isinstance(parent, nn.Sequential) or not idx.isdigit():
                raise ValueError(f"{n}: activation pruning needs the layer inside an nn.Sequential with the "
                                 f"layers that read it; its parent is {type(parent).__name__}")
            why = _chain_at(parent, int(idx), parent_name + ".")
            raise (TypeError if "not a layer" in why else ValueError)(f"{n}: cannot prune: {why}")
        chains = selected
    if not chains:
        raise ValueError(f"{type(model).__name__} has no prunable chain (Linear → [BN] → ReLU → Linear, "
                         "Conv2d → [BN] → ReLU → Conv2d, or an inverted-residual expansion inside an nn.Sequential)")
    stats = activation_counts(model, data, chains)
    report = PruneReport(params_before=sum(p.numel() for p in model.parameters()))
    for c in chains:
        s = stats[c.name]
        limit = threshold if rate is None else rate * s.positions
        keep = torch.nonzero(s.counts > limit).flatten()
        if len(keep) < min_units:
            keep = torch.argsort(s.counts, descending=True, stable=True)[:min_units]
        before = c.units
        if len(keep) < before:
            prune_chain(c, keep, s.mean if fold else None)
        report.rows.append(PruneRow(c.name, c.kind, before, len(keep), s.counts))
    report.params_after = sum(p.numel() for p in model.parameters())
    return report
