"""tools/gpu_check.py without a GPU: the no-CUDA exit, the table, the verdicts and the exit code."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gpu_check  # noqa: E402
from gpu_check import Check  # noqa: E402


def test_without_cuda_one_line_and_exit_2():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no device even on a GPU machine
    out = subprocess.run([sys.executable, "tools/gpu_check.py", "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stdout.strip() == "no CUDA device: gpu-check needs a GPU (e.g. Colab T4)"
    assert "Traceback" not in out.stderr


def test_ratio_verdict():
    assert gpu_check.ratio_verdict(3.99, 4.0) == "PASS"
    assert gpu_check.ratio_verdict(4.0, 4.0) == "PASS"
    assert gpu_check.ratio_verdict(4.01, 4.0) == "FAIL"
    assert gpu_check.ratio_verdict(100.0, None) == "INFO"


SYNTHETIC = [
    Check("fwht (4096, 4096) float32", "0.500 ms vs 0.400 ms: 1.25x clone", "<= 4x clone", "PASS"),
    Check("fwht (1024, 16384) float32", "3.000 ms vs 0.400 ms: 7.50x clone", "(no bar)", "INFO"),
    Check("book", "skipped (--skip-book)", "", "SKIP"),
    Check("adder2d resnet20 16ch 32px", "9.000 ms vs 1.000 ms: 9.00x conv", "<= 6x conv", "FAIL"),
]


def test_table_has_one_line_per_check_with_its_verdict():
    lines = gpu_check.table(SYNTHETIC).splitlines()
    assert lines[0].split() == ["check", "measured", "target", "verdict"]
    assert set(lines[1]) == {"-"}
    assert len(lines) == 2 + len(SYNTHETIC)
    for line, check in zip(lines[2:], SYNTHETIC):
        assert line.startswith(check.name) and check.measured in line and line.endswith(check.verdict)
    long = gpu_check.row(Check("x", "RuntimeError: " + "y" * 200, "runs", "FAIL"))
    assert "..." in long and long.endswith("FAIL") and len(long) < 140


def test_exit_code_is_1_on_any_failure_else_0():
    assert gpu_check.exit_code(SYNTHETIC) == 1
    assert gpu_check.exit_code([c for c in SYNTHETIC if c.verdict != "FAIL"]) == 0
    assert gpu_check.exit_code([]) == 0


def test_an_exception_is_a_failed_row(capsys):
    def broken() -> tuple[str, str]:
        raise RuntimeError("CUDA error: no kernel image is available")

    check = gpu_check.run_check("fwht (4096, 4096) float32", "<= 4x clone", broken)
    assert check.verdict == "FAIL" and check.measured.startswith("RuntimeError: CUDA error")
    rows = gpu_check.section("adder2d vs conv", lambda: [][0])
    assert [r.verdict for r in rows] == ["FAIL"] and rows[0].measured.startswith("IndexError")
    out = capsys.readouterr()
    assert "fwht (4096, 4096) float32" in out.out and "Traceback" in out.err


def test_run_command_echoes_and_returns_the_last_line(capsys):
    code = "import sys; print('1 passed'); print('== 2 passed, 1 skipped in 0.1s =='); sys.exit(3)"
    got = gpu_check.run_command([sys.executable, "-c", code], dict(os.environ))
    assert got == (3, "2 passed, 1 skipped in 0.1s")
    assert "1 passed" in capsys.readouterr().out


@pytest.mark.parametrize("failing", [False, True])
def test_main_exits_non_zero_exactly_when_a_check_fails(monkeypatch, capsys, failing):
    """main() with CUDA faked and every step replaced by synthetic rows."""
    verdict = "FAIL" if failing else "PASS"
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_check, "environment", lambda: "fake GPU")
    rows = {"suite_checks": [Check("pytest tests/cuda", "9 passed", "all pass", "PASS")],
            "fwht_checks": [Check("fwht", "1.2x clone", "<= 4x clone", verdict)],
            "adder_checks": [Check("adder", "2x conv", "<= 6x conv", "PASS")],
            "wht_checks": [Check("wht", "0.5x conv1x1", "(no bar)", "INFO")],
            "training_checks": [Check("epoch", "900 images/s", "finite loss", "PASS")]}
    for name, checks in rows.items():
        monkeypatch.setattr(gpu_check, name, lambda *args, checks=checks: checks)
    monkeypatch.setattr(gpu_check, "book_check", lambda: Check("book", "ok", "every chapter runs", "PASS"))
    assert gpu_check.main(["--quick"]) == int(failing)
    out = capsys.readouterr().out
    assert out.strip().endswith(f"gpu-check: {verdict}")
    assert gpu_check.main(["--skip-tests", "--skip-book"]) == int(failing)
    assert "skipped (--skip-tests)" in capsys.readouterr().out
