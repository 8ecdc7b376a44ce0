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
    assert "78.00 %, 76.00 %" in text and "-7.00" in text and "recorded runs: 3" in text
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
