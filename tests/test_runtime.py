"""``import mnf`` sets the OpenMP spin policy before torch loads, and never overrides a choice."""
import json
import os
import subprocess
import sys

import pytest

CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _run(first: str, **env_set: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CHOICES}
    env.update(env_set)
    imports = "import mnf\nimport torch" if first == "mnf" else "import torch\nimport mnf"
    code = f"import json\n{imports}\nprint(json.dumps(mnf.runtime.spin_policy()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_mnf_first_sets_a_short_spin():
    assert _run("mnf") == {"OMP_WAIT_POLICY": "(unset)", "GOMP_SPINCOUNT": "1000", "KMP_BLOCKTIME": "1",
                           "torch": "applied"}


@pytest.mark.parametrize("name, value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000")])
def test_a_choice_is_kept(name, value):
    status = _run("mnf", **{name: value})
    assert status[name] == value
    assert status["GOMP_SPINCOUNT"] == (value if name == "GOMP_SPINCOUNT" else "(unset)")


def test_torch_first_is_reported():
    status = _run("torch")
    assert status["GOMP_SPINCOUNT"] == "1000"   # Numba's runtime, loaded later, still reads it
    assert status["torch"].startswith("torch was imported before mnf")


@pytest.mark.parametrize("script", ["bench_models.py", "bench_cpu_budget.py", "bench_trainer.py"])
def test_benchmarks_import_mnf_before_torch(script):
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", script)
    modules = [ln.split()[1] for ln in open(path) if ln.startswith("import ")]
    assert modules.index("mnf") < modules.index("torch")
