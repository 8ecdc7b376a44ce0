"""mnf.results: records written atomically with their provenance, read back, averaged and rendered."""
import json
import math

import pytest

from mnf import results


def _record(variant="vanilla", seed=0, acc=0.75, **over):
    rec = dict(experiment="exp", variant=variant, seed=seed, budget={"minutes": 10, "threads": 2},
               command=f"python bench.py --variants {variant} --seeds {seed}", commit="0" * 40, dirty=[],
               date="2026-12-02T01:00:00+00:00", machine=results.machine(), params=1000,
               config={"model": {}, "fit": {}},
               history=[{"epoch": 1, "test_acc": math.nan}, {"epoch": 2, "test_acc": acc}],
               final={"test_acc": acc, "train_time_s": 540.0, "images_per_s": 1000.0, "epochs": 2})
    rec.update(over)
    return rec


def test_write_load_summary(tmp_path):
    for variant, seed, acc in [("vanilla", 0, 0.78), ("vanilla", 1, 0.76), ("pw", 0, 0.70)]:
        path = results.write(_record(variant, seed, acc), tmp_path)
        assert path == tmp_path / "exp" / f"{variant}-seed{seed}.json"
        assert not path.with_name(path.name + ".tmp").exists()
    loaded = results.load("exp", tmp_path)
    assert [(r["variant"], r["seed"]) for r in loaded] == [("pw", 0), ("vanilla", 0), ("vanilla", 1)]
    s = results.summary(loaded)
    assert s["vanilla"]["mean"] == pytest.approx(0.77) and s["vanilla"]["seeds"] == {0: 0.78, 1: 0.76}
    assert results.curve(loaded[1]) == ([2], [0.78])   # the NaN epoch (not evaluated) is left out
    text = str(results.table(loaded, baseline="vanilla"))
    assert "78.00\u202f%, 76.00\u202f%" in text and "-7.00" in text and "recorded runs: 3" in text
    assert results.load("nothing", tmp_path) == []


def test_machine_and_git_state():
    m = results.machine()
    assert {"cpu", "isa", "cores", "torch", "numba", "gpu"} <= set(m) and m["cores"] >= 1
    commit, dirty = results.git_state()
    assert (len(commit) == 40 or commit == "unknown") and isinstance(dirty, list)


@pytest.mark.parametrize("change, message", [
    (dict(final={"test_acc": 0.5}), "needs test_acc, train_time_s and images_per_s"),
    (dict(variant="a/b"), "variant must be a name"),
    (dict(seed=-1), "seed must be an int >= 0"),
])
def test_bad_records_are_refused(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        results.write(_record(**change), tmp_path)
    assert not (tmp_path / "exp").exists() or not any((tmp_path / "exp").iterdir())


def test_missing_fields_and_baseline(tmp_path):
    rec = _record()
    del rec["commit"]
    with pytest.raises(ValueError, match=r"lacks \['commit'\]"):
        results.write(rec, tmp_path)
    with pytest.raises(ValueError, match="baseline 'other' is not among"):
        results.table([_record()], baseline="other")


def test_recorded_files_are_complete():
    """Every committed record has every field, its final accuracy is its last evaluated epoch's."""
    folder = results.root()
    files = sorted(folder.glob("*/*-seed*.json"))
    for f in files:
        rec = json.loads(f.read_text())
        assert set(results.FIELDS) <= set(rec), f
        assert f.name == f"{rec['variant']}-seed{rec['seed']}.json" and f.parent.name == rec["experiment"]
        assert results.curve(rec)[1][-1] == rec["final"]["test_acc"]
        assert rec["final"]["epochs"] == len(rec["history"])


@pytest.mark.slow
def test_bench_cpu_budget_records_a_run(tmp_path):
    """The recording benchmark end to end on a budget of seconds: the file has every field and its
    command names the run; weights go where --weights says."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = os.environ.get("MNF_DATA", str(root / ".data"))
    if not (Path(data) / "cifar-10-batches-py" / "test_batch").is_file():
        pytest.skip(f"no CIFAR-10 at {data}")
    env = dict(os.environ, MNF_RESULTS=str(tmp_path / "results"), MNF_DATA=data)
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_cpu_budget.py"), "--minutes", "0.02",
                          "--variants", "pw_wht", "--seeds", "3", "--record", "--quiet", "--weights",
                          str(tmp_path / "weights")], capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = results.load("mobilenet_cpu10", tmp_path / "results")
    assert [(r["variant"], r["seed"]) for r in rec] == [("pw_wht", 3)]
    r = rec[0]
    assert set(results.FIELDS) <= set(r) and "--variants pw_wht --seeds 3" in r["command"] and "--record" in r["command"]
    assert r["budget"]["full_data"] is False and r["final"]["epochs"] == 1 == len(r["history"])
    assert (tmp_path / "weights" / "mobilenet_cpu10" / "pw_wht-seed3.pt").is_file()
