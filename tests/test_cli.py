"""The command line ``python -m mnf``: arguments checked by argparse, one-line errors, ``--debug``.

Most cases call :func:`mnf.__main__.main` in this process (argument errors exit before any data
is read); a few run the real command in a subprocess to see exactly what a user sees.
"""
import subprocess
import sys

import pytest
import torch

from mnf import __main__ as cli


def run_main(argv, capsys):
    """``(exit status, stdout, stderr)`` of ``main(argv)`` (status 0 when it returns)."""
    try:
        cli.main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, status, *words):
    lines = err.strip().splitlines()
    assert code == status, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("python -m mnf"), err
    for word in words:
        assert word in lines[0], (word, err)


@pytest.mark.parametrize("argv, words", [
    (["train", "--epochs", "0"], ["--epochs", "expected an int >= 1, got 0"]),
    (["train", "--epochs", "-3"], ["--epochs", "got -3"]),
    (["train", "--epochs", "2.5"], ["--epochs", "'2.5'"]),
    (["train", "--per-class", "0"], ["--per-class", "got 0"]),
    (["train", "--per-class", "-4995"], ["--per-class", "got -4995"]),
    (["train", "--test-per-class", "0"], ["--test-per-class"]),
    (["train", "--batch-size", "0"], ["--batch-size"]),
    (["train", "--lr", "nan"], ["--lr", "finite"]),
    (["train", "--lr", "-0.1"], ["--lr"]),
    (["train", "--label-smoothing", "2"], ["--label-smoothing"]),
    (["train", "--width", "0"], ["--width"]),
    (["train", "--width", "inf"], ["--width"]),
    (["train", "--num-classes", "5"], ["--num-classes", ">= 10"]),
    (["train", "--seed", "-1"], ["--seed"]),
    (["train", "--blocks", "1,x"], ["--blocks", "'1,x'"]),
    (["train", "--blocks", "0"], ["--blocks"]),
    (["train", "--model", "vgg"], ["--model", "'vgg'"]),
    (["train", "--pointwise", "fft"], ["--pointwise"]),
    (["eval", "--checkpoint", "c.pt", "--batch-size", "0"], ["--batch-size"]),
    (["eval"], ["--checkpoint"]),
    (["fit"], ["'fit'"]),
    ([], ["command"]),
])
def test_bad_arguments_print_one_line_and_exit_2(argv, words, capsys):
    code, out, err = run_main(argv, capsys)
    assert_one_line_error(code, err, 2, *words)


@pytest.mark.parametrize("argv, option", [
    (["train", "--model", "resnet20", "--width", "0.5"], "--width"),
    (["train", "--model", "resnet20", "--layout", "cifar"], "--layout"),
    (["train", "--model", "resnet20", "--pointwise", "wht"], "--pointwise"),
    (["train", "--model", "resnet20", "--depthwise", "adder"], "--depthwise"),
    (["train", "--model", "resnet20", "--last", "wht"], "--last"),
    (["train", "--model", "mobilenet_v2", "--conv3x3", "adder"], "--conv3x3"),
    (["train", "--conv3x3", "adder"], "--conv3x3"),
])
def test_options_for_another_model_are_refused(argv, option, capsys):
    code, out, err = run_main(argv, capsys)
    assert_one_line_error(code, err, 2, option, "does not apply to --model")


@pytest.mark.parametrize("argv, words", [
    (["train", "--model", "resnet20", "--blocks", "1,2"], ["--blocks", "takes 1 number, got 2"]),
    (["train", "--blocks", "1,2,3"], ["--blocks", "takes 7 numbers, got 3"]),
])
def test_blocks_of_the_wrong_length_are_refused(argv, words, capsys):
    code, out, err = run_main(argv, capsys)
    assert_one_line_error(code, err, 2, *words)


def test_user_errors_print_one_line_and_exit_1(tmp_path, capsys):
    code, out, err = run_main(["eval", "--checkpoint", str(tmp_path / "missing.pt")], capsys)
    assert_one_line_error(code, err, 1, "python -m mnf eval: error:", "no checkpoint at")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, out, err = run_main(["eval", "--checkpoint", str(tmp_path / "junk.pt")], capsys)
    assert_one_line_error(code, err, 1, "not a readable mnf checkpoint")


def test_debug_shows_the_traceback(tmp_path):
    for argv in (["--debug", "eval"], ["eval", "--debug"]):
        with pytest.raises(ValueError, match="no checkpoint"):
            cli.main(argv + ["--checkpoint", str(tmp_path / "missing.pt")])


def test_train_honours_mnf_download_0(tmp_path, monkeypatch, capsys):
    """``train`` forced a download; with MNF_DOWNLOAD=0 and no data it now says where to put it."""
    import mnf.data.download
    monkeypatch.setenv("MNF_DOWNLOAD", "0")
    monkeypatch.setattr(mnf.data.download, "download_cifar10", lambda *a, **k: pytest.fail("downloaded"))
    for command in (["train", "--model", "resnet20", "--blocks", "1"], ["data"]):
        code, out, err = run_main(command + ["--root", str(tmp_path)], capsys)
        assert_one_line_error(code, err, 1, "downloads are off", str(tmp_path))


def test_per_class_larger_than_the_data_is_one_line(tmp_path, monkeypatch, capsys):
    from mnf import data
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 10
    monkeypatch.setattr(data, "load_cifar10", lambda root=None, download=None: data.CIFAR10(
        images, labels, images, labels, [str(i) for i in range(10)]))
    code, out, err = run_main(["train", "--model", "resnet20", "--blocks", "1", "--per-class", "9",
                               "--no-progress"], capsys)
    assert_one_line_error(code, err, 1, "fewer than per_class=9")


def test_the_real_command_line(tmp_path):
    """What a user sees: one line on stderr, no traceback, the exit status; a traceback with --debug."""
    def mnf(*argv):
        return subprocess.run([sys.executable, "-m", "mnf", *argv], capture_output=True, text=True, timeout=300)

    bad = mnf("train", "--per-class", "0")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--per-class" in bad.stderr
    missing = str(tmp_path / "missing.pt")
    user = mnf("eval", "--checkpoint", missing)
    assert user.returncode == 1 and user.stderr.strip() == f"python -m mnf eval: error: no checkpoint at {missing}"
    debug = mnf("--debug", "eval", "--checkpoint", missing)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ValueError: no checkpoint" in debug.stderr
