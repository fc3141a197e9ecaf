#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# goals.py: every performance goal with a bootstrap confidence interval over paired repetitions, and the verdict it supports.
#
# Usage: experiments/lib/goals.py [--results DIR] [--format tsv|md] [--self-test]
#
# A goal is a ratio of two systems' medians (tun / openvpn-udp >= 7) or one
# system's median against a threshold (tun CPU <= 3 s/GB). Throughput runs
# interleave repetitions across systems, so repetition k of tun and of the
# relay were measured next to each other: they form a pair, and the
# bootstrap resamples pairs (with replacement), recomputing the statistic
# (ratio of medians, or median) each time. The 95 % interval is the 2.5th
# and 97.5th percentile of those, from a fixed seed so that the same CSV
# always gives the same interval.
#
# Verdicts, for a goal "at least T" (mirrored for "at most T"):
#   met              the interval's lower end is >= T
#   not met          the interval's upper end is < T
#   level            the interval contains T: the data cannot tell
#   too few runs     fewer than GOAL_MIN_PAIRS pairs: no interval worth the name
#   not measured     a system or metric is missing from the CSV
# Standard library only (Debian's python3, no pip).
import argparse
import csv
import os
import random
import sys

SEED = 19
RESAMPLES = 4000
LEVEL = 0.95
GOAL_MIN_PAIRS = 3

# name, text, experiment, parameter, metric, numerator, denominator
# (None: a one-system goal), op ("ge"/"le"), threshold, unit of the threshold
GOALS = [
    ("GoalTunOpenvpn", "tun / OpenVPN-UDP throughput", "throughput", "streams=1", "throughput",
     "tun", "openvpn-udp", "ge", 7.0, "x"),
    ("GoalTunRelay", "tun / TLS relay throughput", "throughput", "streams=1", "throughput",
     "tun", "tls-relay", "ge", 1.0, "x"),
    ("GoalTunCpuCli", "tun CPU per GB, client", "throughput", "streams=1", "cpu_client",
     "tun", None, "le", 3.0, "s/GB"),
    ("GoalTunCpuSrv", "tun CPU per GB, server", "throughput", "streams=1", "cpu_server",
     "tun", None, "le", 3.0, "s/GB"),
    ("GoalProxyRelay", "proxy / TLS relay throughput", "throughput", "streams=1", "throughput",
     "proxy", "tls-relay", "ge", 1.0, "x"),
    ("GoalNfqueueTun", "nfqueue / tun throughput", "throughput", "streams=1", "throughput",
     "nfqueue", "tun", "ge", 0.5, "x"),
]


def median(xs):
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("median of nothing")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(sorted_xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = q * (len(sorted_xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def statistic(pairs):
    """Ratio of medians over (num, den) pairs; median when den is None."""
    num = median([p[0] for p in pairs])
    if pairs[0][1] is None:
        return num
    den = median([p[1] for p in pairs])
    return num / den if den > 0 else float("inf")


def bootstrap(pairs, seed=SEED, resamples=RESAMPLES, level=LEVEL):
    """(estimate, low, high) of statistic() over the pairs."""
    rng = random.Random(seed)
    n = len(pairs)
    stats = sorted(statistic([pairs[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    alpha = (1 - level) / 2
    return statistic(pairs), percentile(stats, alpha), percentile(stats, 1 - alpha)


def verdict(low, high, op, threshold, n):
    if n < GOAL_MIN_PAIRS:
        return "too few runs"
    if op == "ge":
        if low >= threshold:
            return "met"
        return "not met" if high < threshold else "level"
    if op == "le":
        if high <= threshold:
            return "met"
        return "not met" if low > threshold else "level"
    raise ValueError("op must be ge or le: " + op)


def load(results, experiment):
    """{(system, parameter, metric): {repetition: value}} of a tidy CSV."""
    data = {}
    path = os.path.join(results, experiment + ".csv")
    if not os.path.exists(path):
        return data
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                value = float(row["value"])
                rep = int(row["repetition"])
            except (KeyError, TypeError, ValueError):
                continue
            data.setdefault((row["system"], row["parameter"], row["metric"]), {})[rep] = value
    return data


def pairs_of(data, goal):
    _, _, _, param, metric, num, den, _, _, _ = goal
    a = data.get((num, param, metric))
    if not a:
        return None
    if den is None:
        return [(a[r], None) for r in sorted(a)]
    b = data.get((den, param, metric))
    if not b:
        return None
    return [(a[r], b[r]) for r in sorted(set(a) & set(b))]


def evaluate(results):
    """One dict per goal, in GOALS order."""
    cache = {}
    out = []
    for goal in GOALS:
        name, text, exp, _, _, _, _, op, threshold, unit = goal
        if exp not in cache:
            cache[exp] = load(results, exp)
        pairs = pairs_of(cache[exp], goal)
        g = {"name": name, "text": text, "op": op, "threshold": threshold, "unit": unit,
             "n": 0, "estimate": None, "low": None, "high": None, "verdict": "not measured"}
        if pairs:
            est, low, high = bootstrap(pairs)
            g.update(n=len(pairs), estimate=est, low=low, high=high,
                     verdict=verdict(low, high, op, threshold, len(pairs)))
        out.append(g)
    return out


def fmt(v):
    if v is None:
        return "n/a"
    if v == float("inf"):
        return "inf"
    return "%.2f" % v if abs(v) < 10 else "%.1f" % v


def print_tsv(goals):
    print("name\ttext\top\tthreshold\tunit\tn\testimate\tlow\thigh\tverdict")
    for g in goals:
        print("\t".join([g["name"], g["text"], g["op"], "%g" % g["threshold"], g["unit"], str(g["n"]),
                         fmt(g["estimate"]), fmt(g["low"]), fmt(g["high"]), g["verdict"]]))


def print_md(goals):
    print("| goal | target | measured (median) | 95 % interval | pairs | verdict |")
    print("|---|---|---|---|---|---|")
    for g in goals:
        sign = "≥" if g["op"] == "ge" else "≤"
        unit = "×" if g["unit"] == "x" else " " + g["unit"]
        interval = "n/a" if g["low"] is None else "%s – %s" % (fmt(g["low"]), fmt(g["high"]))
        print("| %s | %s %g%s | %s | %s | %d | %s |" % (g["text"], sign, g["threshold"], unit,
                                                       fmt(g["estimate"]), interval, g["n"], g["verdict"]))


def self_test():
    """The verdict logic and the bootstrap's determinism; exits 1 on a failure."""
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    check("ge met", verdict(1.1, 1.4, "ge", 1.0, 5), "met")
    check("ge met at the edge", verdict(1.0, 1.4, "ge", 1.0, 5), "met")
    check("ge level", verdict(0.9, 1.2, "ge", 1.0, 5), "level")
    check("ge not met", verdict(0.5, 0.9, "ge", 1.0, 5), "not met")
    check("le met", verdict(1.0, 2.9, "le", 3.0, 5), "met")
    check("le level", verdict(2.5, 3.5, "le", 3.0, 5), "level")
    check("le not met", verdict(3.1, 4.0, "le", 3.0, 5), "not met")
    check("too few", verdict(1.5, 1.5, "ge", 1.0, 2), "too few runs")
    check("median odd", median([3, 1, 2]), 2)
    check("median even", median([4, 1, 2, 3]), 2.5)
    # The case: proxy 3.20-4.25 against a relay 3.03-3.74, one
    # pair below 1: the ratio of medians is above 1 but the interval is not.
    proxy = [4.25, 3.20, 3.92, 3.24, 4.12]
    relay = [3.61, 3.61, 3.13, 3.03, 3.74]
    pairs = list(zip(proxy, relay))
    est, low, high = bootstrap(pairs)
    check("ratio of medians", round(est, 4), round(median(proxy) / median(relay), 4))
    check("proxy/relay is level", verdict(low, high, "ge", 1.0, len(pairs)), "level")
    check("same seed, same interval", bootstrap(pairs), (est, low, high))
    check("interval holds the estimate", low <= est <= high, True)
    # Clearly apart: 5x with little noise meets ">= 1", fails ">= 7".
    far = [(5.0 + 0.1 * k, 1.0 + 0.01 * k) for k in range(5)]
    _, low, high = bootstrap(far)
    check("far met", verdict(low, high, "ge", 1.0, 5), "met")
    check("far not met", verdict(low, high, "ge", 7.0, 5), "not met")
    single = [(2.0 + 0.1 * k, None) for k in range(5)]
    est, low, high = bootstrap(single)
    check("one-system median", est, 2.2)
    check("one-system le met", verdict(low, high, "le", 3.0, 5), "met")
    for f in failures:
        print("FAIL " + f)
    print("goals self-test: %d failure(s)" % len(failures))
    return 1 if failures else 0


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description="performance goals with bootstrap intervals")
    ap.add_argument("--results", default=os.path.join(root, "results"))
    ap.add_argument("--format", choices=["tsv", "md"], default="tsv")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    goals = evaluate(args.results)
    (print_md if args.format == "md" else print_tsv)(goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
