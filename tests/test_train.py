"""Trainer: resume equality, checkpoints, schedules, evaluation, CLI (tiny models, tiny data)."""
import importlib.util
import math

import matplotlib
import pytest
import torch
from torch import nn

from mnf.models import resnet20
from mnf.train import History, evaluate, fit, load_checkpoint, lr_at, plot_confusion, plot_history

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tiny_data():
    """20 CIFAR-10 images per class (random images if CIFAR-10 is not on disk), 5 per class to test."""
    from mnf.data import load_cifar10, stratified_subset
    try:
        d = load_cifar10(download=False)
        return (*stratified_subset(d.train_images, d.train_labels, 20),
                *stratified_subset(d.test_images, d.test_labels, 5))
    except FileNotFoundError:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (250, 3, 32, 32), dtype=torch.uint8, generator=g)
        labels = torch.arange(250) % 10
        return images[:200], labels[:200], images[200:], labels[200:]


def tiny_model(**kwargs):
    torch.manual_seed(0)
    return resnet20(blocks=1, **kwargs)


def run(tmp, data, **kwargs):
    return fit(tiny_model(), data, epochs=2, batch_size=50, progress=False, out=tmp, **kwargs)


def test_resume_gives_identical_weights(tmp_path, tiny_data):
    straight = tiny_model()
    h1 = fit(straight, tiny_data, epochs=2, batch_size=50, progress=False, out=tmp_path / "a", schedule="sgdr")
    resumed = tiny_model()
    first = fit(resumed, tiny_data, epochs=2, batch_size=50, progress=False, out=tmp_path / "b",
                schedule="sgdr", stop_after=1)
    assert len(first) == 1
    resumed = tiny_model()  # a fresh process would start from scratch weights
    h2 = fit(resumed, tiny_data, epochs=2, batch_size=50, progress=False, out=tmp_path / "b", schedule="sgdr")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert h1["train_loss"] == h2["train_loss"] and h1["test_acc"] == h2["test_acc"]
    assert History.load(tmp_path / "b")["epoch"] == [1, 2]
    assert (tmp_path / "b" / "history.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")
    assert not list((tmp_path / "b").glob("*.tmp"))


def test_lr_zero_freezes_and_training_moves_weights(tiny_data):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, tiny_data, epochs=1, batch_size=50, progress=False, lr=0.0, weight_decay=0.5, momentum=0.0)
    assert torch.equal(model.stem[0].weight, before["stem.0.weight"])      # lr 0: nothing moves
    fit(model, tiny_data, epochs=1, batch_size=50, progress=False, lr=0.1, weight_decay=0.0)
    assert not torch.equal(model.stem[0].weight, before["stem.0.weight"])


def test_other_architecture_is_refused(tmp_path, tiny_data):
    fit(tiny_model(), tiny_data, epochs=1, batch_size=100, progress=False, out=tmp_path)
    with pytest.raises(ValueError, match="architecture"):
        fit(tiny_model(num_classes=5), tiny_data, epochs=1, batch_size=100, progress=False, out=tmp_path)
    model, ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert model.arch == tiny_model().arch and ckpt["epoch"] == 1


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save(tiny_model().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="architecture"):
        load_checkpoint(tmp_path / "weights.pt")


def test_bad_arguments(tiny_data):
    with pytest.raises(ValueError, match="'cosine', 'sgdr', 'constant'"):
        fit(tiny_model(), tiny_data, epochs=1, schedule="step")
    with pytest.raises(ValueError, match="train_images"):
        fit(tiny_model(), tiny_data[:2], epochs=1)


def test_schedules():
    kw = dict(total_steps=700, steps_per_epoch=100, lr=0.5, sgdr_t0=1, sgdr_mult=2)
    assert lr_at(0, schedule="cosine", **kw) == 0.5 and lr_at(350, schedule="cosine", **kw) == pytest.approx(0.25)
    assert lr_at(699, schedule="constant", **kw) == 0.5
    sgdr = [lr_at(s, schedule="sgdr", **kw) for s in range(700)]
    restarts = [s for s in range(1, 700) if sgdr[s] > sgdr[s - 1]]
    assert restarts == [100, 300] and sgdr[100] == sgdr[300] == 0.5
    assert sgdr[200] == pytest.approx(0.25) and sgdr[699] < 1e-3


def test_evaluate_constant_predictor():
    class Always(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.tensor([5.0, 0, 0]).expand(len(x), 3) + self.w

    labels = torch.tensor([0, 0, 1, 2])
    result = evaluate(Always(), torch.zeros(4, 3, 8, 8, dtype=torch.uint8), labels, batch_size=3)
    assert result.accuracy == 0.5
    assert result.confusion.tolist() == [[2, 0, 0], [1, 0, 0], [1, 0, 0]]
    assert result.precision.tolist() == [0.5, 0, 0] and result.recall.tolist() == [1, 0, 0]
    assert result.f1[0].item() == pytest.approx(2 / 3)
    fig = plot_confusion(result.confusion, ["a", "b", "c"])
    assert len(fig.axes) == 1


def test_plot_history():
    h = History([dict(epoch=e, lr=0.1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=math.nan,
                      time=1.0, images_per_s=10.0) for e in (1, 2)])
    assert len(plot_history(h).axes) == 3
    with pytest.raises(KeyError, match="test_acc"):
        h["accuracy"]


@pytest.mark.skipif(importlib.util.find_spec("mnf.layers.adder") is None, reason="no mnf.layers.adder")
def test_adder_model_trains_and_hooks_are_removed(tiny_data):
    model = tiny_model(conv3x3="adder")
    history = fit(model, tiny_data, epochs=1, batch_size=100, progress=False)
    assert math.isfinite(history["train_loss"][0])
    weight = model.stages[0].f1.weight
    assert not weight._backward_hooks


def test_cli_train_and_eval(tmp_path, tiny_data, capsys, monkeypatch):
    from mnf import __main__ as cli
    from mnf import data
    monkeypatch.setattr(data, "load_cifar10", lambda root=None, download=None: data.CIFAR10(
        tiny_data[0], tiny_data[1], tiny_data[2], tiny_data[3], [str(i) for i in range(10)]))
    cli.main(["train", "--model", "resnet20", "--blocks", "1", "--budget", "ci", "--per-class", "10",
              "--test-per-class", "5", "--batch-size", "50", "--no-progress", "--out", str(tmp_path)])
    cli.main(["eval", "--checkpoint", str(tmp_path / "checkpoint.pt")])
    out = capsys.readouterr().out
    assert "epoch 1: train acc" in out and "after 1 epochs" in out and "precision" in out


AMP_VARIANTS = {
    **{f"mobilenet_v2 pointwise={p}": dict(pointwise=p) for p in ("conv", "wht", "adder")},
    **{f"mobilenet_v2 depthwise={d}": dict(depthwise=d) for d in ("adder", "wht2d")},
    "mobilenet_v2 last=wht": dict(last="wht"),
    "mobilenet_v2 adder pointwise + depthwise": dict(pointwise="adder", depthwise="adder"),
    **{f"resnet20 conv3x3={kind}": dict(resnet=kind) for kind in ("conv", "adder", "separable_adder")},
}


@pytest.mark.parametrize("name", list(AMP_VARIANTS))
def test_every_model_variant_trains_under_mixed_precision(name, tiny_data):
    """fit(amp=True) is what a CUDA machine gets by default (bf16 autocast here, on the CPU)."""
    from mnf.models import mobilenet_v2
    kw = AMP_VARIANTS[name]
    torch.manual_seed(0)
    if "resnet" in kw:
        model = resnet20(blocks=1, conv3x3=kw["resnet"])
    else:
        model = mobilenet_v2(layout="imagenet", width=0.25, blocks=(1,) * 7, input_size=32, **kw)
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, tiny_data, epochs=1, batch_size=50, amp=True, progress=False)
    assert math.isfinite(history["train_loss"][0]) and math.isfinite(history["test_acc"][0])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    moved = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert moved > len(before) // 2


def test_resume_reads_the_checkpoint_onto_the_cpu(tmp_path, tiny_data, monkeypatch):
    """On CUDA, a checkpoint mapped to the GPU would hand torch.set_rng_state a CUDA tensor
    (TypeError: RNG state must be a torch.ByteTensor); fit reads it onto the CPU instead."""
    import mnf.train.loop
    run(tmp_path, tiny_data, stop_after=1)
    seen = []
    original = mnf.train.loop.read_checkpoint
    monkeypatch.setattr(mnf.train.loop, "read_checkpoint", lambda path, device: seen.append(str(device)) or
                        original(path, device))
    assert len(run(tmp_path, tiny_data)) == 2
    assert seen == ["cpu"]
