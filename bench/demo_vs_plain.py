"""Does `make demo`'s sweep beat plain training of the same recipe in the same wall time?

    python bench/demo_vs_plain.py [--workdir bench-demo-vs-plain] [--budget 6m] [--only demo|plain] [--record]
    python bench/demo_vs_plain.py --reference results/<demo sweep>

One invocation runs, one after the other on the same data (generated under the workdir):

  demo   the `automl run` line of the Makefile's `demo` target, read from the Makefile itself (so
         this measures what `make demo` runs), with DEMO_BUDGET = --budget;
  plain  `automl run --policy off` on the same spec (its `-e`) and the same `--time-budget`: one
         training whose epochs and lr schedule are fitted to the whole budget (train.time_budget).

Both go through the same path (trials, summary.json, the best trial's pipeline). Printed as
Markdown and written to <workdir>/demo_vs_plain.json: each command's wall seconds, the trials it
ran, its best val_mAP50 (summary.json `best`), the best trial's lineage and the pipeline's test
evaluation, then the ratio demo / plain of the best val_mAP50. With --record the pair is also
written to bench/data/demo_reference.json (with the date and the machine): the reference that
`make demo` prints at its end (--reference SWEEP: that sweep's best beside the recorded plain run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REFERENCE = ROOT / "bench/data/demo_reference.json"


def make_demo_command(budget: str, name: str) -> list[str]:
    """The Makefile's `demo` recipe line that runs `automl run`, with its make variables filled in."""
    text = ROOT.joinpath("Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M)
    if recipe is None:
        raise SystemExit("Makefile: no `demo:` target with a recipe")
    lines = recipe.group(1).replace("\\\n", " ").splitlines()
    line = next((x for x in lines if "automl run" in x), None)
    if line is None:
        raise SystemExit("Makefile: the demo recipe has no `automl run` line")
    line = line.replace("$(VENV)/bin/", f"{BIN}/").replace("$(DEMO_BUDGET)", budget)
    line = re.sub(r"--name \S+", f"--name {name}", line)
    words = shlex.split(line)
    at = words.index("-e")
    words[at + 1] = str(ROOT / words[at + 1])
    return words


def plain_command(demo: list[str], budget: str, name: str) -> list[str]:
    spec = demo[demo.index("-e") + 1]
    return [f"{BIN}/automl", "run", "--policy", "off", "-e", spec, "--time-budget", budget, "--name", name]


def run(work: Path, name: str, cli: list[str]) -> dict[str, Any]:
    log = work / f"{name}.log"
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(cli, cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - start
    summary = json.loads((work / "results" / name / "summary.json").read_text())
    best = summary.get("best") or {}
    trials = summary.get("trials") or []
    by_number = {t["number"]: t for t in trials}
    lineage, number = [], best.get("trial")
    while number is not None:
        lineage.append(number)
        number = by_number.get(number, {}).get("parent")
    evaluate = ((summary.get("pipeline") or {}).get("evaluate") or {}).get("metrics") or {}
    return {
        "command": shlex.join(cli),
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "trials": len(trials),
        "trial_seconds": [round(t.get("seconds") or 0.0, 1) for t in trials],
        "best_val_mAP50": best.get("value"),
        "best_trial": best.get("trial"),
        "best_epoch": best.get("best_epoch"),
        "lineage": list(reversed(lineage)),
        "test_mAP50": evaluate.get("test_mAP50"),
        "log": str(log),
    }


def print_reference(sweep: Path) -> int:
    """This sweep's best beside the recorded plain-training reference (the end of `make demo`)."""
    try:
        summary = json.loads((sweep / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"{sweep}/summary.json: cannot be read ({exc}); no comparison printed")
        return 1
    if not REFERENCE.is_file():
        print(f"{REFERENCE}: no recorded reference; record one with python bench/demo_vs_plain.py --record")
        return 1
    ref = json.loads(REFERENCE.read_text())
    value = (summary.get("best") or {}).get("value")
    plain, demo = ref["plain"]["best_val_mAP50"], ref["demo"]["best_val_mAP50"]
    budget = (summary.get("settings") or {}).get("time_budget")
    print(f"\nThis sweep: best val_mAP50 {value if value is None else f'{value:.4f}'} ({sweep.name}).")
    print(
        f"Plain training of the same spec in the same {ref['budget']} (automl run --policy off), measured "
        f"{ref['date']} on {ref['machine']} by bench/demo_vs_plain.py: {plain:.4f}; that run's sweep: "
        f"{demo:.4f} (x{demo / plain:.3f})."
    )
    if value is not None:
        print(f"This sweep against that plain run: {value - plain:+.4f} (x{value / plain:.3f}).")
    if budget is not None and abs(float(budget) - float(ref.get("budget_seconds", budget))) > 1:
        print(f"(this sweep's budget was {budget:.0f} s, the reference's {ref['budget']}: not the same race)")
    return 0


def record(results: dict[str, Any], budget: str) -> None:
    from automl.settings.tao_settings import parse_settings  # the budget as automl reads it

    seconds = parse_settings({"time_budget": budget}).time_budget
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "budget": budget,
        "budget_seconds": seconds,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})",
        **{side: {k: v for k, v in r.items() if k != "log"} for side, r in results.items()},
    }
    REFERENCE.write_text(json.dumps(data, indent=2) + "\n")
    print(f"recorded in {REFERENCE}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="bench-demo-vs-plain")
    parser.add_argument("--budget", default="6m", help="DEMO_BUDGET and the plain run's --time-budget")
    parser.add_argument("--only", choices=("demo", "plain"), help="run one side only")
    parser.add_argument(
        "--record", action="store_true", help=f"write the pair to {REFERENCE.relative_to(ROOT)}"
    )
    parser.add_argument(
        "--reference", metavar="SWEEP", help="print SWEEP's best beside the recorded reference"
    )
    args = parser.parse_args()
    if args.reference:
        return print_reference(Path(args.reference))
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data/synthetic/label_map.txt").is_file():
        synth = [f"{BIN}/rtdetr", "dataset", "synth", "--out", "data/synthetic"]
        subprocess.run(synth, cwd=work, check=True, stdout=subprocess.DEVNULL)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    demo = make_demo_command(args.budget, f"demo-{stamp}")
    commands = {"demo": demo, "plain": plain_command(demo, args.budget, f"plain-{stamp}")}
    results = {}
    for side, cli in commands.items():
        if args.only in (None, side):
            print(f"running {side}: {shlex.join(cli)}", flush=True)
            results[side] = run(work, cli[cli.index("--name") + 1], cli)
    (work / "demo_vs_plain.json").write_text(json.dumps(results, indent=2))
    print("| run | wall s | trials | best val_mAP50 | best trial (lineage) | test_mAP50 |")
    print("|---|---:|---:|---:|---|---:|")
    for side, r in results.items():
        value = f"{r['best_val_mAP50']:.4f}" if r["best_val_mAP50"] is not None else "-"
        test = f"{r['test_mAP50']:.4f}" if r["test_mAP50"] is not None else "-"
        lineage = " -> ".join(str(n) for n in r["lineage"])
        print(f"| {side} | {r['seconds']:.0f} | {r['trials']} | {value} | {lineage} | {test} |")
    if all(results.get(s, {}).get("best_val_mAP50") for s in ("demo", "plain")):
        ratio = results["demo"]["best_val_mAP50"] / results["plain"]["best_val_mAP50"]
        print(f"\ndemo / plain best val_mAP50: x{ratio:.3f}")
        if args.record:
            record(results, args.budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
