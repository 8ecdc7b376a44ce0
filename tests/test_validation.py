"""Bad input never crashes, hangs, or silently trains something else (issue 16).

One test per example of the issue, named after it; ``tests/test_properties.py`` generates many
more cases of every kind, ``tests/test_cli.py`` covers the command line. The convention: a bad
argument raises ``ValueError`` (``TypeError`` for a wrong type: ``mnf._check.ArgumentTypeError``,
which is both) naming the argument, what was given and what was expected.
"""
import math
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from numba import njit
from torch import nn

import mnf.transforms as T
from mnf._check import ArgumentTypeError
from mnf.adder import adder2d
from mnf.layers import Adder2d, WHTPointwise, adaptive_lr
from mnf.models import mf_autoencoder, mobilenet_v2, resnet20


def tiny_data(n=40, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % classes
    return x, y, x[:20], y[:20]


def tiny_fit(**kw):
    from mnf.train import fit
    torch.manual_seed(0)
    kw = {"epochs": 1, "batch_size": 20, "progress": False, **kw}
    data = kw.pop("data", tiny_data())
    return fit(resnet20(blocks=1), data, **kw)


def in_subprocess(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a crash or a hang cannot take the test run down)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)


# ----------------------------------------------------------------------------- memory corruption

@njit(cache=True)
def _butterfly_rows(x):
    for r in range(x.shape[0]):
        T.butterfly_(x[r])


def test_butterfly_refuses_a_length_that_is_not_a_power_of_two():
    """It wrote 20 elements past a 12-element buffer; now refused from Python and from njit code."""
    guard = np.zeros(64)
    buf = guard[:12]
    with pytest.raises(ValueError, match="len\\(buf\\) must be a power of two >= 1, got 12"):
        T.butterfly_(buf)
    assert not guard.any()
    with pytest.raises(ValueError, match="power of two"):
        _butterfly_rows(np.zeros((2, 12)))
    with pytest.raises(TypeError, match="1-D float32 or float64"):
        T.butterfly_(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="buf"):
        T.butterfly_([1.0, 2.0])
    x = np.random.default_rng(0).standard_normal(16)
    want = T.hadamard(16) @ x
    T.butterfly_(x)
    np.testing.assert_allclose(x, want, atol=1e-12)


def test_adder2d_refuses_absurd_padding_before_allocating():
    """The buffer sizes wrapped around int64 and the kernel segfaulted; run in a subprocess."""
    result = in_subprocess("""
        import torch
        from mnf.adder import adder2d
        try:
            adder2d(torch.randn(1, 1, 131072, 1), torch.randn(2, 1, 1, 1), padding=2**31 - 2**15)
        except ValueError as error:
            print("ValueError:", error)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ValueError: adder2d: the ") and "padding=2147450880" in result.stdout
    assert "more than this machine's memory" in result.stdout


# ----------------------------------------------------------------------------- hangs

@pytest.mark.parametrize("kw", [dict(sgdr_t0=0), dict(sgdr_t0=-1), dict(sgdr_mult=0), dict(sgdr_mult=-2),
                                dict(sgdr_mult=0.5), dict(sgdr_t0=math.nan), dict(sgdr_mult=math.inf)])
def test_lr_at_refuses_sgdr_periods_that_never_end(kw):
    from mnf.train import lr_at
    args = dict(step=500, total_steps=700, steps_per_epoch=100, lr=0.1, schedule="sgdr", sgdr_t0=1, sgdr_mult=2)
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        lr_at(**{**args, **kw})


def test_lr_at_finds_the_sgdr_period_in_constant_time():
    """A tiny first period used to mean ~1e14 loop iterations; the closed form answers at once."""
    from mnf.train import lr_at
    args = dict(total_steps=10**9, steps_per_epoch=1, lr=1.0, schedule="sgdr")
    assert 0 <= lr_at(10**8, sgdr_t0=1e-6, sgdr_mult=1, **args) <= 1
    assert 0 <= lr_at(10**8, sgdr_t0=1e-300, sgdr_mult=1.000001, **args) <= 1


@pytest.mark.parametrize("kw", [dict(sgdr_t0=0), dict(sgdr_mult=0), dict(sgdr_mult=-1)])
def test_fit_refuses_bad_sgdr_arguments(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        tiny_fit(schedule="sgdr", **kw)


# ----------------------------------------------------------------------------- wrong data in

def test_float_images_in_unit_range_are_refused():
    from mnf.data import batches, normalize
    x, y, *_ = tiny_data()
    with pytest.raises(ValueError, match="look scaled to \\[0, 1\\]"):
        normalize(x.float() / 255)
    with pytest.raises(ValueError, match="train_images"):
        tiny_fit(data=(x.float() / 255, y, x[:20], y[:20]))
    with pytest.raises(ValueError, match="images"):
        batches(x.float() - 128, y, 10)   # already normalised: negative values
    torch.testing.assert_close(normalize(x.float()), normalize(x))   # floats in [0, 255] are fine


def test_one_channel_images_are_refused():
    from mnf.data import normalize
    with pytest.raises(ValueError, match=r"images must be a batch of shape \(N, 3, H, W\), got \(2, 1, 8, 8\)"):
        normalize(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    x, y, *_ = tiny_data()
    with pytest.raises(ValueError, match="train_images"):
        tiny_fit(data=(x[:, :1], y, x[:20], y[:20]))


def _cifar_folder(tmp_path, labels=None, images=10):
    """A CIFAR-10 folder of tiny batch files; ``labels`` replaces the first file's labels."""
    from mnf.data import FILES, FOLDER
    folder = tmp_path / FOLDER
    folder.mkdir()
    for name in FILES[:-1]:
        batch = {b"data": np.zeros((images, 3072), np.uint8), b"labels": [i % 10 for i in range(images)]}
        if name == FILES[0] and labels is not None:
            batch[b"labels"] = labels
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}))
    return tmp_path


@pytest.mark.parametrize("labels", [[12] + list(range(9)), [-1] + list(range(9))])
def test_cifar_file_with_labels_outside_0_9_is_refused(tmp_path, labels):
    from mnf.data import load_cifar10
    root = _cifar_folder(tmp_path, labels)
    with pytest.raises(ValueError, match=r"data_batch_1: labels must lie in 0\.\.9"):
        load_cifar10(root, download=False)


def test_cifar_file_with_fewer_labels_than_images_is_refused(tmp_path):
    from mnf.data import load_cifar10
    root = _cifar_folder(tmp_path, list(range(7)))
    with pytest.raises(ValueError, match="data_batch_1: 10 images but 7 labels"):
        load_cifar10(root, download=False)


def test_a_well_formed_cifar_folder_loads(tmp_path):
    from mnf.data import load_cifar10
    data = load_cifar10(_cifar_folder(tmp_path), download=False)
    assert data.train_images.shape == (50, 3, 32, 32) and data.train_labels.dtype == torch.int64


@pytest.mark.parametrize("name, value", [("lr", math.nan), ("lr", math.inf), ("momentum", math.nan),
                                         ("weight_decay", -1.0), ("weight_decay", math.inf),
                                         ("label_smoothing", math.nan), ("label_smoothing", 1.5),
                                         ("adder_eta", math.inf), ("adder_eta", 0.0)])
def test_fit_refuses_non_finite_hyperparameters(name, value):
    with pytest.raises(ValueError, match=f"fit: {name} must be a finite number"):
        tiny_fit(**{name: value})


@pytest.mark.parametrize("eta", [math.inf, math.nan, 0.0, -1.0])
def test_adaptive_lr_refuses_non_finite_eta(eta):
    with pytest.raises(ValueError, match="adaptive_lr: eta must be a finite number > 0"):
        adaptive_lr(resnet20(blocks=1, conv3x3="adder"), eta=eta)


def test_prune_refuses_nan_data():
    from mnf.compress import prune
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    before = [p.detach().clone() for p in model.parameters()]
    data = torch.randn(16, 4)
    data[3, 1] = math.nan
    with pytest.raises(ValueError, match="data must hold finite inputs"):
        prune(model, data)
    with pytest.raises(ValueError, match="finite inputs"):
        prune(model, [(data, None)])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # nothing changed


@pytest.mark.parametrize("fake", [False, True])
def test_quantize_refuses_nan_weights(fake):
    from mnf.compress import fake_quantize, quantize
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="2's weight holds 1 NaN or infinite values"):
        (fake_quantize if fake else quantize)(model, bits=8)
    assert type(model[0]) is nn.Linear   # validated before any layer was swapped


@pytest.mark.parametrize("per_class", [0, -1, -4995])
def test_stratified_subset_refuses_per_class_below_one(per_class):
    from mnf.data import stratified_subset
    x, y, *_ = tiny_data()
    with pytest.raises(ValueError, match=f"per_class must be an int >= 1, got {per_class}"):
        stratified_subset(x, y, per_class)
    with pytest.raises(TypeError, match="per_class"):
        stratified_subset(x, y, 2.5)


@pytest.mark.parametrize("stop_after", [-1, 0])
def test_fit_refuses_stop_after_below_one(stop_after):
    with pytest.raises(ValueError, match=f"stop_after must be an int >= 1, got {stop_after}"):
        tiny_fit(stop_after=stop_after)


@pytest.mark.parametrize("args, kw, name", [((0, 4, 3), {}, "in_channels"), ((4, 0, 3), {}, "out_channels"),
                                            ((4, 4, 0), {}, "kernel_size"), ((4, 4, 3), dict(stride=0), "stride"),
                                            ((4, 4, 3), dict(groups=0), "groups"),
                                            ((4, 4, 3), dict(padding=-1), "padding"),
                                            ((4, 4, 3), dict(stride=1.5), "stride")])
def test_adder2d_layer_refuses_zero_sizes_and_stride(args, kw, name):
    with pytest.raises(ValueError, match=f"Adder2d: {name} must be an int"):
        Adder2d(*args, **kw)


@pytest.mark.parametrize("build, kw, name", [(resnet20, dict(blocks=0), "blocks"),
                                             (resnet20, dict(num_classes=0), "num_classes"),
                                             (mobilenet_v2, dict(num_classes=0), "num_classes"),
                                             (mobilenet_v2, dict(width=math.nan), "width"),
                                             (mobilenet_v2, dict(blocks=(1, 1, 1, 0, 1, 1, 1)), "blocks"),
                                             (mobilenet_v2, dict(dropout=1.0), "dropout")])
def test_models_refuse_empty_sizes(build, kw, name):
    with pytest.raises(ValueError, match=name):
        build(**kw)


# ----------------------------------------------------------------------------- wrong answers

def test_evaluate_refuses_num_classes_other_than_the_logits():
    from mnf.train import evaluate
    model = resnet20(blocks=1)
    x, y, *_ = tiny_data(20)
    with pytest.raises(ValueError, match=r"returned shape \(20, 10\), expected \(N, 5\) logits for num_classes=5"):
        evaluate(model, x, y, num_classes=5)
    with pytest.raises(ValueError, match="labels must be class indices 0..4"):
        evaluate(resnet20(blocks=1, num_classes=5), x, y)
    assert evaluate(model, x, y, num_classes=10).confusion.shape == (10, 10)


def test_normalized_hadamard_needs_a_float_dtype():
    with pytest.raises(ValueError, match="hadamard: dtype must be a float dtype .* got int64"):
        T.hadamard(8, normalized=True, dtype=np.int64)
    with pytest.raises(ValueError, match="dtype must be a signed integer or float dtype"):
        T.hadamard(8, dtype=np.uint8)   # -1 would wrap to 255
    np.testing.assert_array_equal(T.hadamard(8, dtype=np.int8), T.hadamard(8))
    np.testing.assert_allclose(T.hadamard(8, normalized=True, dtype=np.float32), T.hadamard(8) / math.sqrt(8),
                               rtol=1e-6)


def test_next_power_of_two_and_bit_reverse_refuse_floats():
    with pytest.raises(TypeError, match="next_power_of_two: n must be an int, got 2.5"):
        T.next_power_of_two(2.5)
    with pytest.raises(TypeError, match="bit_reverse: indices must be integers, got 1.5"):
        T.bit_reverse(1.5, 2)
    with pytest.raises(TypeError, match="bits"):
        T.bit_reverse(1, 2.0)
    assert T.next_power_of_two(np.int64(5)) == 8 and T.bit_reverse(np.uint8(1), 2) == 2


@pytest.mark.parametrize("kind", ["adder", "separable_adder_wht"])
def test_autoencoder_refuses_sizes_it_cannot_reconstruct(kind):
    model = mf_autoencoder(channels=(4, 4, 4), conv3x3=kind)
    with pytest.raises(ValueError, match=r"H and W must be multiples of 4 .* \(1, 3, 30, 30\)"):
        model(torch.rand(1, 3, 30, 30))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.rand(1, 1, 32, 32))
    assert model.eval()(torch.rand(1, 3, 28, 28)).shape == (1, 3, 28, 28)


# ----------------------------------------------------------------------------- checkpoints, empty data

@pytest.mark.parametrize("kind", ["truncated", "empty", "junk", "not a checkpoint", "another architecture",
                                  "broken optimizer state"])
def test_fit_resume_from_bad_checkpoints_raises_value_error(tmp_path, kind):
    tiny_fit(out=tmp_path)
    path = tmp_path / "checkpoint.pt"
    raw = path.read_bytes()
    match = "not a readable mnf checkpoint"
    if kind == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
        match = "not a readable mnf checkpoint \\(an empty file"
    elif kind == "junk":
        path.write_bytes(b"hello")
    elif kind == "not a checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
        match = "not an mnf checkpoint with an architecture"
    elif kind == "another architecture":
        ckpt = torch.load(path, weights_only=True)
        ckpt["arch"] = {"name": "resnet20", "kwargs": {**ckpt["arch"]["kwargs"], "blocks": 2}}
        torch.save(ckpt, path)
        match = "architecture"
    else:
        ckpt = torch.load(path, weights_only=True)
        ckpt["optimizer"] = [1, 2, 3]
        torch.save(ckpt, path)
        match = "cannot resume from"
    with pytest.raises(ValueError, match=match):
        tiny_fit(out=tmp_path, epochs=2)


def test_load_checkpoint_wraps_a_model_it_cannot_rebuild(tmp_path):
    from mnf.train import load_checkpoint
    tiny_fit(out=tmp_path)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ckpt["arch"]["kwargs"]["blocks"] = 2      # weights of a 1-block model
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="cannot rebuild the model"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_fit_refuses_an_empty_training_set():
    x, y, tx, ty = tiny_data()
    with pytest.raises(ValueError, match="fit: the train set is empty"):
        tiny_fit(data=(x[:0], y[:0], tx, ty))
    with pytest.raises(ValueError, match="fit: the test set is empty"):
        tiny_fit(data=(x, y, tx[:0], ty[:0]))


def test_fit_refuses_labels_the_model_cannot_predict():
    x, y, tx, ty = tiny_data()
    with pytest.raises(ValueError, match="labels go up to 9, but the model has 5 outputs"):
        from mnf.train import fit
        fit(resnet20(blocks=1, num_classes=5), (x, y, tx, ty), epochs=1, progress=False)
    with pytest.raises(ValueError, match="train_labels"):
        tiny_fit(data=(x, y[:-1], tx, ty))
    with pytest.raises(ValueError, match="train_labels must be class indices"):
        tiny_fit(data=(x, y - 1, tx, ty))


# ----------------------------------------------------------------------------- valid input accepted

@pytest.mark.parametrize("kind", ["conv", "adder", "separable_adder"])
def test_cost_table_on_a_float64_model(kind):
    from mnf.cost import cost_table
    r32 = cost_table(resnet20(blocks=1, conv3x3=kind))
    r64 = cost_table(resnet20(blocks=1, conv3x3=kind).double())
    assert r64.totals["params"] == r32.totals["params"] and r64.totals["adds"] == r32.totals["adds"]
    assert r64.totals["activation_bytes"] == 2 * r32.totals["activation_bytes"]
    wht = mobilenet_v2(layout="imagenet", width=0.25, blocks=(1,) * 7, pointwise="wht", depthwise="wht2d",
                       input_size=32).double()
    assert cost_table(wht).totals["mults"] > 0


def test_numpy_integers_are_accepted_as_dims_and_sizes():
    x = np.random.default_rng(0).standard_normal((3, 8))
    for dim in (np.int64(1), np.int32(-1), np.uint8(1)):
        np.testing.assert_allclose(T.fwht(x, dim=dim), x @ T.hadamard(8), atol=1e-12)
    np.testing.assert_allclose(T.fwht2d(x[:2, :4], dims=(np.int64(0), np.int64(1))),
                               T.hadamard(2) @ x[:2, :4] @ T.hadamard(4), atol=1e-12)
    np.testing.assert_allclose(T.block_fwht(x, np.int64(4)), T.block_fwht(x, 4))
    assert Adder2d(np.int64(4), np.int32(8), np.int64(3), padding=np.int64(1)).weight.shape == (8, 4, 3, 3)
    assert resnet20(blocks=np.int64(1), num_classes=np.int64(10)).arch["kwargs"]["blocks"] == 1
    assert WHTPointwise(np.int64(8), np.int64(8)).n == 8
    y = adder2d(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3), stride=np.int64(2), padding=np.int64(1))
    assert y.shape == (1, 3, 3, 3)


def test_block_fwht_accepts_array_likes():
    np.testing.assert_allclose(T.block_fwht([1.0, 2.0, 3.0, 4.0], 2), [3.0, -1.0, 7.0, -1.0])
    np.testing.assert_allclose(T.block_ifwht([[3, -1, 7, -1]], 2), [[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(T.fwht2d([[1, 2], [3, 4]]), [[10, -2], [-4, 0]])
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        T.block_fwht(["a", "b"], 2)
    with pytest.raises(TypeError, match="x must be an array"):
        T.fwht([[1.0, 2.0], [3.0]])


def test_wrong_types_are_type_errors_that_are_also_value_errors():
    """The project's convention: code catching ValueError keeps working for a wrong type."""
    with pytest.raises(ArgumentTypeError) as info:
        T.hadamard("8")
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert "got '8'" in str(info.value)
