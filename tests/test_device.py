"""Device discipline: a function that takes a model runs on the model's device, in its dtype, and
leaves the model as it found it (train/eval mode of every submodule, no hooks, grad mode).

There is no GPU here, so the checks are built from what a CPU can show:

- **dtype**: the model is converted to float64 and fed float32 / uint8 data.  A function that
  forgets to move its data to the model ends up feeding float32 to a float64 model, which
  :class:`Checked` (and PyTorch) refuse.
- **device**: :func:`mnf.metrics.model_device` is patched to answer ``cpu:0`` -- a real CPU, so
  everything still computes, but a device object that only the helper hands out -- and
  ``torch.Tensor.to`` is wrapped to record every tensor a ``.to(cpu:0)`` call returns.
  :class:`Checked` asserts that every input the model sees is one of those tensors, i.e. that
  the function moved it with ``.to(model_device(model))`` rather than leaving it where it was.
- **internal tensors** (the zero input of ``cost_table`` / ``factorize``): the model is put on
  the ``meta`` device; an input made on the CPU instead of the model's device raises there.
"""
import copy
import importlib

import numba
import pytest
import torch
from torch import nn

import mnf.metrics
from mnf.compress import activation_counts, factorize, fake_quantize, prune, quantize
from mnf.cost import cost_table
from mnf.metrics import eval_mode, evaluate, model_device, model_dtype, probe, resolve_device
from mnf.models.autoencoder import conv_autoencoder, reconstruct, train_autoencoder
from mnf.timing import latency_ms, median_seconds

SENTINEL = torch.device("cpu", 0)
MODULES = [importlib.import_module(name) for name in (
    "mnf.metrics", "mnf.cost", "mnf.compress.prune", "mnf.compress.factorize", "mnf.compress.quantize",
    "mnf.models.autoencoder", "mnf.timing")]


@pytest.fixture(autouse=True)
def no_smoke(monkeypatch):
    monkeypatch.delenv("MNF_SMOKE", raising=False)


@pytest.fixture
def moved(monkeypatch):
    """Patch ``model_device`` to answer SENTINEL; return the list of tensors ``.to(SENTINEL)`` made."""
    for module in MODULES:
        if hasattr(module, "model_device"):
            monkeypatch.setattr(module, "model_device", lambda model: SENTINEL)
    results = []
    real_to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        out = real_to(self, *args, **kwargs)
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)) and torch.device(target) == SENTINEL:
            results.append(out)
        return out

    monkeypatch.setattr(torch.Tensor, "to", spy)
    return results


class Checked(nn.Module):
    """Wraps a model; every input must be on the model's device, in its dtype, and (with ``moved``)
    one of the tensors a ``.to(model_device(model))`` call returned."""

    def __init__(self, inner: nn.Module, moved: list | None = None):
        super().__init__()
        self.inner = inner
        self.moved = moved
        self.calls = 0

    def forward(self, x):
        p = next(self.inner.parameters())
        assert x.device == p.device, f"input on {x.device}, model on {p.device}"
        assert x.dtype == p.dtype, f"input {x.dtype}, model {p.dtype}"
        if self.moved is not None:
            assert any(x is t for t in self.moved), "the input was not moved with .to(model_device(model))"
        self.calls += 1
        return self.inner(x)


def classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def images_labels(n=13):
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=gen, dtype=torch.uint8), torch.arange(n) % 3


def modes(model):
    return [m.training for m in model.modules()]


def no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ------------------------------------------------------------------ helpers

def test_model_device_and_dtype():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu") and model_dtype(nn.Linear(2, 2)) == torch.float32
    assert model_dtype(nn.Linear(2, 2).double()) == torch.float64
    assert model_device(nn.ReLU()) == torch.device("cpu") and model_dtype(nn.ReLU()) == torch.get_default_dtype()
    bn = nn.BatchNorm1d(3, affine=False).double()              # buffers only
    assert model_dtype(bn) == torch.float64
    assert model_device(nn.Linear(2, 2).to("meta")) == torch.device("meta")
    with pytest.raises(ValueError, match="is on cpu"):
        resolve_device(nn.Linear(2, 2), "meta")
    assert resolve_device(nn.ReLU(), "meta") == torch.device("meta")   # nothing to be on
    assert mnf.metrics._same_device(torch.device("cuda"), torch.device("cuda", 1))
    assert not mnf.metrics._same_device(torch.device("cuda", 0), torch.device("cuda", 1))


def test_eval_mode_and_probe_restore_mixed_modes_hooks_and_grad_mode():
    model = classifier().train()
    model[1].eval()                                              # e.g. a frozen BN
    before = modes(model)
    seen = []
    with pytest.raises(RuntimeError, match="inside"):
        with probe(model, [(model[2], lambda m, i, o: seen.append(o.shape))]):
            assert not any(modes(model)) and not torch.is_grad_enabled()
            model(torch.zeros(1, 3, 4, 4))
            raise RuntimeError("inside")
    assert seen and modes(model) == before and no_hooks(model) and torch.is_grad_enabled()
    with eval_mode(model):
        assert not any(modes(model))
    assert modes(model) == before


# ------------------------------------------------------------------ data is moved to the model's device and dtype

def test_evaluate_moves_data_to_model_device_and_dtype(moved):
    images, labels = images_labels()
    reference = evaluate(classifier(), images, labels, batch_size=5)
    checked = Checked(classifier().double(), moved)
    result = evaluate(checked, images, labels, batch_size=5)
    assert checked.calls == 3
    assert result.accuracy == reference.accuracy and result.loss == pytest.approx(reference.loss, rel=1e-5)
    assert isinstance(result.loss, float) and result.confusion.device.type == "cpu"
    assert torch.equal(result.confusion, reference.confusion)


def test_evaluate_device_argument_must_be_the_models():
    images, labels = images_labels()
    with pytest.raises(ValueError, match="move the model first"):
        evaluate(classifier(), images, labels, device="meta")


@pytest.mark.parametrize("as_batches", [False, True])
def test_activation_counts_and_prune_move_data(moved, as_batches):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 40), nn.ReLU(), nn.Linear(40, 3))
    with torch.no_grad():
        net[0].bias[::3] = -100.0                                 # some dead units
    x = torch.randn(300, 5)                                       # float32 data, float64 model
    data = [(x[i:i + 128], None) for i in range(0, 300, 128)] if as_batches else x
    reference = activation_counts(copy.deepcopy(net), x)["0"]
    checked = Checked(copy.deepcopy(net).double(), moved)
    stats = activation_counts(checked, data)["inner.0"]
    assert checked.calls == (3 if as_batches else 2)
    assert torch.equal(stats.counts, reference.counts) and stats.counts.device.type == "cpu"
    y0 = checked.inner(x.double())
    report = prune(checked, data)
    assert report.rows[0].units_after < 40 and checked.inner[0].weight.dtype == torch.float64
    torch.testing.assert_close(checked.inner(x.double()), y0)


def test_prune_keeps_batch_norm_in_the_models_dtype():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)).double()
    model.eval()
    with torch.no_grad():
        model[1].bias[[1, 5]] = -1e4
    x = torch.randn(4, 3, 6, 6)
    y0 = model(x.double())
    prune(model, x)
    assert model[1].num_features == 6 and model[1].weight.dtype == model[1].running_mean.dtype == torch.float64
    torch.testing.assert_close(model(x.double()), y0)


def test_activation_counts_refuses_uint8_images():
    images, _ = images_labels()
    with pytest.raises(ValueError, match="normalise images first"):
        activation_counts(classifier(), images)


def test_cost_table_input_follows_model_device_and_dtype():
    reference = cost_table(classifier(), (2, 3, 8, 8))
    checked = cost_table(Checked(classifier().double()), (2, 3, 8, 8))
    meta = cost_table(Checked(classifier().to("meta")), (2, 3, 8, 8))   # a CPU input would raise here
    for report in (checked, meta):
        assert [(r.mults, r.adds, r.params) for r in report.layers] == \
               [(r.mults, r.adds, r.params) for r in reference.layers]
    assert checked.totals["activation_bytes"] == 2 * reference.totals["activation_bytes"]   # 8-byte values
    assert cost_table(nn.Sequential(nn.ReLU(), nn.Flatten()), (1, 2, 3, 3)).totals["params"] == 0   # no parameters


def test_factorize_positions_follow_model_device_and_dtype():
    from mnf.compress.factorize import _positions
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    assert _positions(Checked(copy.deepcopy(model).to("meta")), ["inner.0", "inner.3"], (1, 8, 4, 4)) == \
        {"inner.0": 16, "inner.3": 1}
    double = Checked(copy.deepcopy(model).double())
    report = factorize(double, rank=2, input_size=(1, 8, 4, 4))
    assert report.rows[0].macs_before == 16 * 72 * 16 and double.inner[0][0].weight.dtype == torch.float64
    assert isinstance(report.rows[0].rel_error, float)


def test_quantize_keeps_the_models_dtype():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 5)).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    y0 = model(x)
    report = quantize(copy.deepcopy(model), bits=8)
    assert all(isinstance(r.rel_error, float) for r in report.rows)
    quantized = copy.deepcopy(model)
    quantize(quantized, bits=8)
    assert quantized(x).dtype == torch.float64 and (quantized(x) - y0).abs().max() < 0.05 * y0.abs().max()
    fake = copy.deepcopy(model)
    fake_quantize(fake, bits=8)
    assert fake[0].weight.dtype == torch.float64


def test_train_autoencoder_moves_data_to_model_device_and_dtype(moved):
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = conv_autoencoder(channels=(4, 2, 4))
    reference = train_autoencoder(copy.deepcopy(model), images, steps=5, batch_size=4, progress=False)
    checked = Checked(copy.deepcopy(model).double(), moved)
    losses = train_autoencoder(checked, images, steps=5, batch_size=4, progress=False)
    assert checked.calls == 5 and all(isinstance(v, float) for v in losses)
    assert losses == pytest.approx(reference, rel=1e-4)


def test_train_autoencoder_moves_the_model_when_given_a_device():
    calls = []

    class Recorder(nn.Sequential):
        def to(self, *args, **kwargs):
            calls.append((args, kwargs))
            return super().to(*args, **kwargs)

    model = Recorder(*conv_autoencoder(channels=(4, 2, 4)).children())
    train_autoencoder(model, torch.rand(8, 3, 8, 8), steps=1, batch_size=4, device="cpu", progress=False)
    assert calls == [(("cpu",), {})]


def test_reconstruct_moves_batches_and_returns_cpu_float32(moved):
    images = torch.rand(7, 3, 8, 8)
    model = conv_autoencoder(channels=(4, 2, 4)).double().train()
    checked = Checked(model, moved)
    out = reconstruct(checked, images, batch_size=3)
    assert checked.calls == 3 and out.dtype == torch.float32 and out.device.type == "cpu" and model.training
    with torch.no_grad():
        expected = model.eval()(images.double()).float()
    torch.testing.assert_close(out, expected)


def test_latency_moves_input_and_restores_threads_and_modes(moved):
    model = Checked(classifier().double(), moved).train()
    model.inner[1].eval()
    before = modes(model)
    threads, nthreads = torch.get_num_threads(), numba.get_num_threads()
    ms = latency_ms(model, torch.randn(4, 3, 8, 8), repeats=3)
    assert isinstance(ms, float) and ms > 0 and model.calls == 4          # one warm-up
    assert modes(model) == before
    assert (torch.get_num_threads(), numba.get_num_threads()) == (threads, nthreads)


def test_latency_on_meta_model_uses_the_models_device():
    assert latency_ms(Checked(classifier().to("meta")), torch.randn(2, 3, 8, 8), repeats=1) >= 0


# ------------------------------------------------------------------ an error inside the model leaves it as it was

class Boom(nn.Module):
    def __init__(self, after: int = 0):
        super().__init__()
        self.after = after

    def forward(self, x):
        if self.after == 0:
            raise RuntimeError("boom")
        self.after -= 1
        return x


def failing_classifier(after=0):
    net = classifier()
    return nn.Sequential(*list(net)[:4], Boom(after), *list(net)[4:])


CALLS = {
    "evaluate": lambda m: evaluate(m, *images_labels(), batch_size=5),                # 3 batches
    "activation_counts": lambda m: activation_counts(m, torch.randn(300, 3, 8, 8)),   # 2 batches
    "prune": lambda m: prune(m, torch.randn(300, 3, 8, 8)),
    "cost_table": lambda m: cost_table(m, (1, 3, 8, 8)),
    "factorize": lambda m: factorize(m, rank=1, input_size=(1, 3, 8, 8)),
    "latency_ms": lambda m: latency_ms(m, torch.randn(2, 3, 8, 8), repeats=2),         # warm-up + 2
}
CASES = [(name, 0) for name in CALLS] + [("evaluate", 1), ("activation_counts", 1), ("prune", 1), ("latency_ms", 1),
                                         ("latency_ms", 2)]


@pytest.mark.parametrize("name, after", CASES)
def test_error_in_model_restores_modes_hooks_grad_and_threads(name, after):
    """The model raises on its first call (after=0) or a later one; everything is put back."""
    model = failing_classifier(after).train()
    model[1].eval()
    before = modes(model)
    threads, nthreads = torch.get_num_threads(), numba.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        CALLS[name](model)
    assert modes(model) == before, name
    assert no_hooks(model), name
    assert torch.is_grad_enabled()
    assert (torch.get_num_threads(), numba.get_num_threads()) == (threads, nthreads)


def test_error_in_reconstruct_and_train_autoencoder(monkeypatch):
    import tqdm.auto
    bars = []

    class Bar(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    ae = conv_autoencoder(channels=(4, 2, 4))
    model = nn.Sequential(ae.encoder, Boom(after=1), ae.decoder)
    with pytest.raises(RuntimeError, match="boom"):
        train_autoencoder(model, torch.rand(8, 3, 8, 8), steps=4, batch_size=4, progress=True)
    assert len(bars) == 1 and bars[0].n == 1 and bars[0] not in Bar._instances   # closed after the error
    model = nn.Sequential(ae.encoder, Boom(), ae.decoder).train()
    with pytest.raises(RuntimeError, match="boom"):
        reconstruct(model, torch.rand(2, 3, 8, 8))
    assert model.training and torch.is_grad_enabled()


# ------------------------------------------------------------------ timing

class Clock:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_median_seconds_takes_the_median_and_synchronises_cuda(monkeypatch):
    import mnf.timing
    clock = Clock()
    monkeypatch.setattr(mnf.timing, "time", clock)
    durations = iter([100.0, 0.005, 0.001, 0.003, 0.002, 0.004])      # warm-up, then five timed calls

    def fn():
        clock.now += next(durations)

    syncs = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: syncs.append(device))
    assert median_seconds(fn) == pytest.approx(0.003)
    assert syncs == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    calls = []
    assert median_seconds(lambda: calls.append(len(syncs)), repeat=3, warmup=2) == 0.0
    assert calls == [0, 0, 1, 2, 3] and len(syncs) == 4               # after the warm-up and every timed call
    with pytest.raises(ValueError, match="repeat must be an int >= 1"):
        median_seconds(fn, repeat=0)


def test_timing_repeats_are_capped_in_smoke_mode(monkeypatch):
    monkeypatch.setenv("MNF_SMOKE", "1")
    calls = []
    median_seconds(lambda: calls.append(1), repeat=10, warmup=1)
    assert len(calls) == 1 + 2


def test_best_seconds_each_takes_turns_and_keeps_the_fastest(monkeypatch):
    import mnf.timing
    from mnf.timing import best_seconds, best_seconds_each
    clock = Clock()
    monkeypatch.setattr(mnf.timing, "time", clock)
    order = []

    def timed(name, durations):
        durations = iter(durations)

        def fn():
            order.append(name)
            clock.now += next(durations)
        return fn

    f, g = timed("f", [9.0, 3.0, 1.0, 2.0]), timed("g", [9.0, 5.0, 6.0, 4.0])   # warm-up, then three timed calls
    assert best_seconds_each([f, g], repeat=3, warmup=1) == [1.0, 4.0]
    assert order == ["f", "g"] + ["f", "g"] * 3                               # warm-ups, then turns
    assert best_seconds(timed("h", [2.0, 0.5, 1.5]), repeat=3, warmup=0) == 0.5
    for bad in ([], [3], "fn", None):
        with pytest.raises(TypeError, match="fns"):
            best_seconds_each(bad)
    with pytest.raises(ValueError, match="warmup must be an int >= 0"):
        best_seconds(f, warmup=-1)


def test_stopwatch_times_a_block_and_synchronises_cuda(monkeypatch):
    import mnf.timing
    from mnf.timing import Stopwatch
    clock = Clock()
    monkeypatch.setattr(mnf.timing, "time", clock)
    syncs = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: syncs.append(device))
    with Stopwatch() as watch:
        clock.now += 2.0
        assert watch.seconds == 2.0                   # running: the time so far
        clock.now += 1.0
    clock.now += 5.0
    assert watch.seconds == 3.0 and len(syncs) == 2    # stopped; waited for CUDA at start and stop
    with pytest.raises(RuntimeError, match="never started"):
        Stopwatch().seconds
    with pytest.raises(RuntimeError, match="boom"), Stopwatch() as failed:
        clock.now += 1.0
        raise RuntimeError("boom")
    assert failed.seconds == 1.0                      # stopped on the way out of a failing block


def test_chapter_done_prints_the_time_since_the_setup_cell(monkeypatch, capsys):
    import sys

    import mnf.plots
    import mnf.timing
    budget_module = sys.modules["mnf.budget"]   # mnf.budget is also the name of a function
    monkeypatch.setenv("MNF_BUDGET", "ci")
    monkeypatch.setattr(budget_module, "_CHAPTER_CLOCK", None)
    monkeypatch.setattr(mnf.plots, "style", lambda: None)   # leave matplotlib's settings alone
    with pytest.raises(RuntimeError, match="mnf.chapter"):
        mnf.chapter_done()
    clock = Clock()
    monkeypatch.setattr(mnf.timing, "time", clock)
    mnf.chapter("no/such/chapter")
    clock.now += 41.6
    capsys.readouterr()
    mnf.chapter_done()
    assert capsys.readouterr().out == "chapter ran in 42 s under budget 'ci'\n"


def test_forward_hooks_are_removed_and_modes_kept(monkeypatch):
    from mnf.metrics import forward_hooks
    model = failing_classifier(after=0).train()
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with forward_hooks([(model[0], lambda m, a, o: seen.append(o.shape))]):
            model(torch.randn(2, 3, 8, 8))
    assert len(seen) == 1 and no_hooks(model) and model.training and torch.is_grad_enabled()
    with pytest.raises(TypeError, match="hook"):
        with forward_hooks([(model[0], "not a hook")]):
            pass
    assert no_hooks(model)
