"""Budgets and smoke mode: the caps live in mnf.budget and the package functions apply them."""
import json

import pytest
import torch

import mnf
from mnf.budget import SMOKE_CAPS, cap, chapter, full_size, iterations, pick, record_work, smoke
from mnf.data import stratified_subset
from mnf.models import resnet20
from mnf.train import amp_dtype_for, fit, plan_training


def data(n_train=200, n_test=50):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(n_train + n_test) % 10
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


def test_budget_and_smoke_switches(monkeypatch):
    monkeypatch.setenv("MNF_BUDGET", "cpu")
    assert pick(ci=1, cpu=2, gpu=3) == 2
    monkeypatch.setenv("MNF_BUDGET", "laptop")
    with pytest.raises(ValueError, match="MNF_BUDGET='laptop'"):
        mnf.budget()
    monkeypatch.delenv("MNF_SMOKE", raising=False)
    assert not smoke() and cap(100, "epochs") == 100 and iterations(50) == 50
    monkeypatch.setenv("MNF_SMOKE", "1")
    assert smoke() and cap(100, "epochs") == SMOKE_CAPS["epochs"] and cap(1, "epochs") == 1
    assert iterations(50) == SMOKE_CAPS["iterations"]
    monkeypatch.setenv("MNF_SMOKE", "maybe")
    with pytest.raises(ValueError, match="MNF_SMOKE='maybe'"):
        smoke()
    with pytest.raises(ValueError, match="what='speed'"):
        cap(3, "speed")
    with pytest.raises(ValueError, match="n=-1"):
        iterations(-1)


def test_smoke_caps_fit_and_logs_the_skipped_work(monkeypatch, tmp_path):
    log = tmp_path / "work.jsonl"
    monkeypatch.setenv("MNF_SMOKE", "1")
    monkeypatch.setenv("MNF_WORK_LOG", str(log))
    torch.manual_seed(0)
    history = fit(resnet20(blocks=1), data(), epochs=7, batch_size=20, progress=False)
    assert len(history) == SMOKE_CAPS["epochs"]           # 2 epochs, not 7
    work = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(work) == 1
    # 7 epochs of 10 steps of 20 images and 7 evaluations of 50 images (a third of a training
    # image each) were asked for; 2 epochs of 1 step ran, the first step not timed
    assert work[0]["planned_images"] == pytest.approx(7 * 10 * 20 + 7 * 50 / 3)
    ran = SMOKE_CAPS["epochs"] * SMOKE_CAPS["steps_per_epoch"]
    assert work[0]["images"] == (ran - 1) * 20 and work[0]["seconds"] > 0
    monkeypatch.delenv("MNF_SMOKE")
    assert len(fit(resnet20(blocks=1), data(), epochs=3, batch_size=100, progress=False)) == 3


def test_smoke_estimates_count_the_full_data_set(monkeypatch, tmp_path):
    """A chapter asks for 40 images per class; the smoke run trains on the 20 it has, and logs the
    work of 40 per class."""
    log = tmp_path / "work.jsonl"
    monkeypatch.setenv("MNF_SMOKE", "1")
    monkeypatch.setenv("MNF_WORK_LOG", str(log))
    images, labels, test_x, test_y = data()
    train = stratified_subset(images, labels, 40)
    assert len(train[0]) == 200 and full_size(train[0]) == 400
    fit(resnet20(blocks=1), (*train, test_x, test_y), epochs=3, batch_size=50, progress=False)
    work = json.loads(log.read_text())
    assert work["planned_images"] == pytest.approx(3 * (400 // 50) * 50 + 3 * 50 / 3)


def test_smoke_subsets_fit_the_small_data(monkeypatch):
    images, labels, *_ = data()
    with pytest.raises(ValueError, match="fewer than per_class=500"):
        stratified_subset(images, labels, 500)
    monkeypatch.setenv("MNF_SMOKE", "1")
    x, y = stratified_subset(images, labels, 500)
    assert len(x) == 200 and torch.equal(y.bincount(), torch.full((10,), 20))


def test_record_work_is_silent_without_a_log(monkeypatch, tmp_path):
    monkeypatch.delenv("MNF_WORK_LOG", raising=False)
    record_work("fit", planned_images=1, images=1, seconds=1)        # no file, no error
    monkeypatch.setenv("MNF_WORK_LOG", str(tmp_path / "w"))
    record_work("fit", planned_images=10, images=2, seconds=0.5)
    assert json.loads((tmp_path / "w").read_text())["planned_images"] == 10


def test_plan_training_sizes_by_time(capsys):
    model = resnet20(blocks=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fixed = plan_training(model, data(), seconds=None, max_epochs=5)
    assert fixed.epochs == 5 and len(fixed.data[0]) == 200 and fixed.reason == "epochs fixed by the budget"
    many = plan_training(model, data(), seconds=1e6, max_epochs=9, batch_size=20)
    assert many.epochs == 9 and len(many.data[0]) == 200 and "allow 9 epochs" in many.reason
    few = plan_training(model, data(), seconds=1e-3, max_epochs=9, batch_size=20)
    # not one epoch fits: one epoch on a stratified subset, at least a batch of it
    assert few.epochs == 1 and 20 <= len(few.data[0]) < 200 and len(few.data[2]) == 50
    assert torch.equal(few.data[1].bincount(), torch.full((10,), len(few.data[0]) // 10))
    assert "so one epoch on" in few.reason and "plan: " in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # the probe trains a copy
    for bad in (0, -5.0, float("nan"), float("inf"), "10"):
        with pytest.raises(ValueError, match="seconds="):
            plan_training(model, data(), seconds=bad, max_epochs=3)
    with pytest.raises(ValueError, match="max_epochs=0"):
        plan_training(model, data(), seconds=None, max_epochs=0)


def test_amp_dtype_is_bf16_only_where_native(monkeypatch):
    assert amp_dtype_for(torch.device("cpu")) == torch.bfloat16
    asked = {}

    def supported(including_emulation=True):
        asked["emulation"] = including_emulation
        return including_emulation              # a T4: bf16 only through emulation
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert amp_dtype_for(torch.device("cuda")) == torch.float16 and asked["emulation"] is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert amp_dtype_for(torch.device("cuda")) == torch.bfloat16


def test_chapter_header_says_budget_device_and_times(monkeypatch, capsys):
    monkeypatch.setenv("MNF_BUDGET", "ci")
    monkeypatch.delenv("MNF_SMOKE", raising=False)
    chapter("wht/hadamard")
    out = capsys.readouterr().out
    assert "budget 'ci'" in out and "device cpu" in out and "MNF_BUDGET" in out
    assert "This chapter takes: ci" in out and "cpu" in out and "estimate" in out
    assert max(len(line) for line in out.splitlines()) <= 80          # fits the book's column
