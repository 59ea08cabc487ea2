#!/usr/bin/env python3
"""Summaries of repeated measurements for bench/run.sh.

Each measurement series is a file DIR/NAME with one number per line, one
line per round (bench/run.sh appends them as it alternates ours and the
peer's runs).  Usage:

  stats.py DIR best  NAME [--rate K] [--higher] [--fmt F]   the best value
  stats.py DIR range NAME [--rate K] [--higher] [--fmt F]   "worst–best (spread %)"
  stats.py DIR ratio A B  [--rate K] [--higher] [--fmt F]   best(A) / best(B)
  stats.py DIR max   NAME [--div D] [--fmt F]               the largest value / D

Values are times (smaller is better) unless --higher (a rate); --rate K
turns each time t into K / t (e.g. MiB per second), which is a rate.  The
spread is (worst - best) / best.
"""
import argparse
import sys


def series(path, rate):
    with open(path) as f:
        vals = [float(x) for x in f.read().split()]
    if not vals:
        sys.exit(f"stats.py: no values in {path}")
    return [rate / v for v in vals] if rate else vals


def best_worst(vals, higher):
    return (max(vals), min(vals)) if higher else (min(vals), max(vals))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("what", choices=["best", "range", "ratio", "max"])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--higher", action="store_true")
    ap.add_argument("--div", type=float, default=1.0)
    ap.add_argument("--fmt", default=".2f")
    a = ap.parse_args()
    higher = a.higher or a.rate > 0
    vals = [series(f"{a.dir}/{n}", a.rate) for n in a.names]
    if a.what == "best":
        print(format(best_worst(vals[0], higher)[0], a.fmt))
    elif a.what == "range":
        b, w = best_worst(vals[0], higher)
        lo, hi = min(b, w), max(b, w)
        spread = abs(w - b) / b * 100 if b else 0.0
        print(f"{lo:{a.fmt}}–{hi:{a.fmt}} ({spread:.0f} %)")
    elif a.what == "ratio":
        ba = best_worst(vals[0], higher)[0]
        bb = best_worst(vals[1], higher)[0]
        print(format(ba / bb, ".2f") if bb else "n/a")
    else:
        print(format(max(vals[0]) / a.div, a.fmt))


if __name__ == "__main__":
    main()
