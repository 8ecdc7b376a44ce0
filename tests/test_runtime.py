"""``import mnf`` keeps the OpenMP defaults; ``MNF_SPIN=short`` loads torch with a short spin, leaves
Numba's defaults; choices in the environment are respected."""
import os
import subprocess
import sys

import pytest

from mnf.runtime import CHOICES


def _run(first: str, **env_set: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in CHOICES and k != "MNF_SPIN"}
    env.update(env_set)
    imports = "import mnf\nimport torch" if first == "mnf" else "import torch\nimport mnf"
    code = f"import os\n{imports}\nprint(mnf.runtime.spin_policy())\nprint(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip().splitlines()[-2:]


def test_import_mnf_keeps_the_defaults():
    status, left = _run("mnf")
    assert status.startswith("the OpenMP runtimes' defaults") and left == "None"


def test_short_spin_on_request():
    status, left = _run("mnf", MNF_SPIN="short")
    assert status == "torch: GOMP_SPINCOUNT=1000, KMP_BLOCKTIME=1; Numba: its runtime's defaults"
    assert left == "None"   # removed again: Numba's runtime, loaded later, keeps its default


@pytest.mark.parametrize("name, value", [("OMP_WAIT_POLICY", "PASSIVE"), ("GOMP_SPINCOUNT", "300000")])
def test_a_choice_is_kept(name, value):
    status, left = _run("mnf", MNF_SPIN="short", **{name: value})
    assert status == f"the environment's choice: {name}={value}"
    assert left == (value if name == "GOMP_SPINCOUNT" else "None")


def test_torch_first_is_reported():
    status, left = _run("torch", MNF_SPIN="short")
    assert status.startswith("torch was imported before mnf") and left == "None"


@pytest.mark.parametrize("script", ["bench_models.py", "bench_cpu_budget.py", "bench_trainer.py"])
def test_benchmarks_import_mnf_before_torch(script):
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", script)
    modules = [ln.split()[1] for ln in open(path) if ln.startswith("import ")]
    assert modules.index("mnf") < modules.index("torch")


def test_a_wrong_spin_setting_is_refused():
    env = dict(os.environ, MNF_SPIN="fast")
    out = subprocess.run([sys.executable, "-c", "import mnf"], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "MNF_SPIN must be 'default' or 'short', got 'fast'" in out.stderr
