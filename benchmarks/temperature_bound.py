"""How many of the demo's runs fit their temperature at the search bound, per digits `val_fraction`.

    python benchmarks/temperature_bound.py                          # the demo grid at 0.1 and 0.2
    python benchmarks/temperature_bound.py --fractions 0.1,0.2,0.3 --workers 2

A fitted temperature at its bound (T = 0.01) means the run's validation split was classified
perfectly, so temperature scaling has nothing to fit and its `*_ts` numbers say more about the
bound than the model (the report leaves them out and says how many). The demo's digits
validation split is a share of 1,348 training images (135 at 0.1, 270 at 0.2); this runs examples/quick.yaml (all its
backends, arms and seeds) once per fraction into a temporary folder and prints, per fraction,
how many runs hit the bound, per backend and arm, and their validation size. Nothing is
written to results/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=str(ROOT / "examples" / "quick.yaml"))
    parser.add_argument("--fractions", default="0.1,0.2", help="digits val_fraction values, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", default=None, help="a seed range to cut the grid to, e.g. 0-4")
    args = parser.parse_args(argv)

    import ablate
    from ablate.analysis.report import at_bound

    base = yaml.safe_load(Path(args.grid).read_text())
    print(f"grid {args.grid}: {base['backends']} x {base['arms']} x seeds {args.seeds or base['seeds']}")
    print(f"{'val_fraction':>12} {'runs':>5} {'at bound':>9}  per backend/arm (at bound / runs)   minutes")
    for fraction in (float(f) for f in args.fractions.split(",")):
        data = dict(base)
        data["datasets"] = [{"name": "digits", "val_fraction": fraction}]
        data["study"] = f"tbound-{fraction:g}"
        with tempfile.TemporaryDirectory() as tmp:
            grid_path = Path(tmp) / "grid.yaml"
            grid_path.write_text(yaml.safe_dump(data))
            start = time.perf_counter()
            # The sweep's progress lines go to stderr (2>/dev/null to hide them).
            ablate.run(str(grid_path), results=Path(tmp) / "results", workers=args.workers, seeds=args.seeds,
                       log=None)
            minutes = (time.perf_counter() - start) / 60
            runs = ablate.load_study(Path(tmp) / "results" / data["study"]).runs
        done = runs[runs["status"] == "completed"]
        flags = at_bound(done)
        cells = ", ".join(f"{b} {a} {int(flags[(done['backend'] == b) & (done['arm'] == a)].sum())}/"
                          f"{int(((done['backend'] == b) & (done['arm'] == a)).sum())}"
                          for b in sorted(done["backend"].unique()) for a in base["arms"])
        print(f"{fraction:>12g} {len(done):>5} {int(flags.sum()):>9}  {cells}   {minutes:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
