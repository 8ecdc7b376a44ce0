"""Training step rate of whole models (cpu budget's MobileNetV2 variants, ResNet-20), side by side.

    python benchmarks/bench_models.py                 # batch 256, channels_last, all variants
    python benchmarks/bench_models.py --quick         # batch 32, fewer rounds: a smoke run
    python benchmarks/bench_models.py --json PATH     # also save everything measured

Prints images/s per variant (quiet, and with one busy-loop process competing, in the same run),
each multiplier-free variant's ratio to vanilla, peak memory of a step, a per-role profile of
vanilla and the multiplier-free MobileNetV2 variants, and PASS/FAIL for the targets:
WHT-pointwise >= 0.8x vanilla, adder >= 0.6x, last-WHT >= 0.95x, peak memory <= 1.5x vanilla,
every variant under load >= 0.4x its quiet rate. What is measured and how: mnf.bench.models.
"""
from __future__ import annotations

import argparse
import json
import os
import platform

import mnf  # first: sets the thread pools' spin policy before torch loads (mnf.runtime)
import numba
import torch

from mnf.bench.models import VARIANTS, peak_memory, profile, step_rates

TARGETS = {"pw_wht": 0.8, "adder": 0.6, "last_wht": 0.95}
MEMORY_MAX, LOAD_MIN = 1.5, 0.4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 32, 2 rounds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--no-load", action="store_true", help="skip the rounds under load")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    variants = args.variants.split(",")
    batch, rounds = (32, 2) if args.quick else (256, 5)
    print(f"batch {batch}, channels_last, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numba {numba.__version__} ({numba.get_num_threads()} threads, layer {numba.config.THREADING_LAYER}), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"spin policy: {mnf.runtime.spin_policy()}")
    rates = step_rates(variants, batch, rounds, load=not args.no_load,
                       baseline="vanilla" if "vanilla" in variants else None)
    mem = peak_memory(variants, batch)
    base = rates.get("vanilla", {}).get("quiet")
    print(f"\n{'variant':<20}{'img/s':>9}{'vs vanilla':>12}{'loaded':>9}{'ratio':>7}{'peak MB':>9}")
    for v in variants:
        r = rates[v]
        rel = f"{r['vs_baseline']:.2f}x" if base else "-"
        loaded = f"{r['loaded']:.0f}" if "loaded" in r else "-"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        print(f"{v:<20}{r['quiet']:>9.0f}{rel:>12}{loaded:>9}{ratio:>7}{mem[v] / 2**20:>9.0f}")
    profiles = {v: profile(v, batch) for v in variants if v in ("vanilla", "last_wht", "pw_wht", "adder", "wht2d")}
    for v, prof in profiles.items():  # the JSON keeps "step" and "other" too
        step, other = prof["step"]["total"], prof["other"]["total"]
        print(f"\nprofile of {v}: {step * 1e3:.1f} ms per step (ms forward / backward per role)")
        roles_only = {r: t for r, t in prof.items() if r not in ("step", "other")}
        for role, t in sorted(roles_only.items(), key=lambda kv: -sum(kv[1].values())):
            print(f"  {role:<12}{t['forward'] * 1e3:>8.1f}{t['backward'] * 1e3:>8.1f}")
        print(f"  {'other':<12}{other * 1e3:>8.1f}")
    print()
    verdicts = []
    if base:
        for v, target in TARGETS.items():
            if v in rates:
                ratio = rates[v]["vs_baseline"]
                verdicts.append((ratio >= target, f"{v}: {ratio:.2f}x vanilla (target >= {target}x)"))
        for v in variants:
            if v in mem and "vanilla" in mem and VARIANTS[v][0] == "mobilenet_v2":
                ratio = mem[v] / mem["vanilla"]
                verdicts.append((ratio <= MEMORY_MAX, f"{v}: peak memory {ratio:.2f}x vanilla (target <= {MEMORY_MAX}x)"))
    for v in variants:
        if "ratio" in rates[v]:
            verdicts.append((rates[v]["ratio"] >= LOAD_MIN,
                             f"{v}: {rates[v]['ratio']:.2f}x its quiet rate under load (target >= {LOAD_MIN}x)"))
    for ok, text in verdicts:
        print(("PASS  " if ok else "FAIL  ") + text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": batch, "rates": rates, "memory": mem, "profiles": profiles}, f, indent=1)


if __name__ == "__main__":
    main()
