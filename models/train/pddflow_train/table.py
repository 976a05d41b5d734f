"""Markdown table (paper Table 1 shape) from evaluate.py --json outputs.

Usage: python -m pddflow_train.table RESULTS.json [RESULTS2.json ...] [--names a,b,...]
Rows: method x mode; columns per class: Dice %, HD95 px, HD px (mean +- std over sequences); for a
class that closes in some frames (a pressed vein, see evaluate.py) also its Dice over the open
frames and its predicted area in the closed frames (% of the first frame's area; truth in the header).
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
    closing = [c for c in classes if any("closed" in s.get(c, {}) for _, _, s in rows)]
    head = "| method | mode | overall Dice % | " + " | ".join(f"{c} Dice % | {c} HD95 px | {c} HD px" for c in classes)
    for c in closing:
        truth = next(s[c]["closed"]["true_area"] for _, _, s in rows if "closed" in s.get(c, {}))
        head += f" | {c} Dice % (open frames) | {c} area when closed % (truth {100 * truth:.1f})"
    print(head + " |")
    print("|" + "---|" * (3 + 3 * len(classes) + 2 * len(closing)))
    for m, mode, s in rows:
        cells = [m, mode, f"{100 * s['overall_dice'][0]:.1f} ± {100 * s['overall_dice'][1]:.1f}"]
        for c in classes:
            if c in s:
                v = s[c]
                cells += [f"{100 * v['dice'][0]:.1f} ± {100 * v['dice'][1]:.1f}", f"{v['hd95'][0]:.1f} ± {v['hd95'][1]:.1f}",
                          f"{v['hd'][0]:.1f} ± {v['hd'][1]:.1f}"]
            else:
                cells += ["–"] * 3
        for c in closing:
            v = s.get(c, {})
            cells.append(f"{100 * v['dice_open'][0]:.1f} ± {100 * v['dice_open'][1]:.1f}" if "dice_open" in v else "–")
            cells.append(f"{100 * v['closed']['pred_area']:.1f}" if "closed" in v else "–")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
