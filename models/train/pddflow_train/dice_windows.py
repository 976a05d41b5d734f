#!/usr/bin/env python3
"""Overall Dice over the first and the last N scored frames of each sequence, from pddflow-eval
JSON reports (pddflow-eval's own window table uses thirds below 200 scored frames). A frame's
overall Dice is the mean of its scored classes, as pddflow-eval computes it.

Usage: python -m pddflow_train.dice_windows [--n 100] REPORT.json [REPORT.json ...]
"""

import argparse
import json

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+")
    p.add_argument("--n", type=int, default=100)
    args = p.parse_args()
    print(f"| method | sequence | Dice first {args.n} % | Dice last {args.n} % | drift |")
    print("|---|---|---|---|---|")
    for path in args.reports:
        with open(path) as fh:
            r = json.load(fh)
        firsts, lasts = [], []
        for s in r["sequences"]:
            d = []
            for f in s["frames"]:
                scored = [c["dice"] for c in f["classes"] if c.get("dice") is not None]
                if scored:
                    d.append(float(np.mean(scored)))
            first, last = 100 * np.mean(d[:args.n]), 100 * np.mean(d[-args.n:])
            firsts.append(first)
            lasts.append(last)
            print(f"| {r['method']} | {s['name']} | {first:.1f} | {last:.1f} | {last - first:+.1f} |")
        print(f"| **{r['method']}** | mean | {np.mean(firsts):.1f} | {np.mean(lasts):.1f} | "
              f"{np.mean(lasts) - np.mean(firsts):+.1f} |")


if __name__ == "__main__":
    main()
