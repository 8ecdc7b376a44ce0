"""``import mnf`` sets the OpenMP wait policy before torch loads, and never overrides a set value."""
import json
import os
import subprocess
import sys

import pytest

PROBE = ("import json, os, sys\n{first}\nimport torch\n"
         "print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), mnf.runtime.wait_policy()]))")


def _run(first: str, env_policy: str | None) -> list:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    code = PROBE.format(first=first) if first == "import mnf" else PROBE.format(first="import torch; import mnf")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_mnf_first_sets_passive():
    value, status = _run("import mnf", None)
    assert value == "PASSIVE" and status == {"OMP_WAIT_POLICY": "PASSIVE", "torch": "applied"}


def test_a_set_policy_is_kept():
    assert _run("import mnf", "ACTIVE")[0] == "ACTIVE"


def test_torch_first_is_reported():
    value, status = _run("torch first", None)
    assert value == "PASSIVE"   # Numba's runtime, loaded later, still reads it
    assert status["torch"].startswith("torch was imported before mnf")


@pytest.mark.parametrize("script", ["bench_models.py", "bench_cpu_budget.py", "bench_trainer.py"])
def test_benchmarks_import_mnf_before_torch(script):
    root = os.path.join(os.path.dirname(__file__), "..", "benchmarks", script)
    lines = [ln.split()[1] for ln in open(root) if ln.startswith("import ")]
    assert lines.index("mnf") < lines.index("torch")
