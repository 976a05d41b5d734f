"""Markdown table (paper Table 1 shape) from evaluate.py --json outputs.

Usage: python table.py RESULTS.json [RESULTS2.json ...] [--names a,b,...]
Rows: method x mode; columns per class: Dice %, HD95 px, HD px (mean +- std over sequences).
"""
import argparse
import json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--rename", default="", help="semicolon list old=new for method names")
    a = ap.parse_args()
    ren = dict(x.split("=", 1) for x in a.rename.split(";") if x)
    rows = []
    classes = []
    for f in a.files:
        d = json.load(open(f))
        for method, res in d.items():
            for mode, s in res.items():
                for c in s:
                    if c not in ("overall_dice", "per_sequence") and c not in classes:
                        classes.append(c)
                rows.append((ren.get(method, method), mode, s))
    head = "| method | mode | overall Dice % | " + " | ".join(f"{c} Dice % | {c} HD95 px | {c} HD px" for c in classes) + " |"
    print(head)
    print("|" + "---|" * (3 + 3 * len(classes)))
    for m, mode, s in rows:
        cells = [m, mode, f"{100 * s['overall_dice'][0]:.1f} ± {100 * s['overall_dice'][1]:.1f}"]
        for c in classes:
            if c in s:
                v = s[c]
                cells += [f"{100 * v['dice'][0]:.1f} ± {100 * v['dice'][1]:.1f}", f"{v['hd95'][0]:.1f} ± {v['hd95'][1]:.1f}",
                          f"{v['hd'][0]:.1f} ± {v['hd'][1]:.1f}"]
            else:
                cells += ["–"] * 3
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
