"""model.json's "scores" from pddflow-eval reports: overall Dice per sequence and its mean, per
data set and MODE@SIZE.

    python -m pddflow_train.scores OUT.json "SET:MODE@SIZE=REPORT.json" ...

SET names the data (e.g. "carotid_all7_native (0035, 0037 never trained on)"), REPORT.json is
the report.json pddflow-eval wrote for it (`--predictions DIR` -> DIR/report.json). The result
goes to export.py --scores.
"""
import argparse
import json

FORMAT = ("pddflow-eval (docs/evaluation.md), through the element, CPU, 1 thread; overall Dice in "
          "[0,1], mean of per-sequence means; produced from the pddflow-eval JSON reports")
COMMANDS = {"eval": "pddflow-eval --dataset DATA --predictions OUT --mode MODE --working-size SIZE --threads 1",
            "bench": "scripts/benchmarks.sh"}


def overall_dice(report):
    """Per-sequence overall Dice (mean over frames of the mean over classes, as pddflow-eval's
    summary row) and their mean, from one report."""
    summary = next(s for s in report["summary"] if s["name"] == "overall")
    per = {}
    for seq in report["sequences"]:
        frames = [f for f in seq["frames"] if f["classes"]]
        scores = [sum(c["dice"] for c in f["classes"]) / len(f["classes"]) for f in frames]
        per[seq["name"]] = round(sum(scores) / len(scores), 4) if scores else None
    return {"overall_dice_per_sequence": per, "overall_dice_mean": round(summary["dice"]["mean"], 4)}


def build(entries):
    out = {"format": FORMAT}
    for entry in entries:
        key, path = entry.rsplit("=", 1)
        name, run = key.rsplit(":", 1)
        with open(path) as f:
            out.setdefault(name, {})[run] = overall_dice(json.load(f))
    out["commands"] = COMMANDS
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("entries", nargs="+", help='"SET:MODE@SIZE=REPORT.json"')
    a = ap.parse_args()
    with open(a.out, "w") as f:
        json.dump(build(a.entries), f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
