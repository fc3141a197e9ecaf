#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# goals.py: every goal of the issues with a bootstrap confidence interval over paired repetitions (or a check of every repetition), and the verdict it supports.
#
# Usage: experiments/lib/goals.py [--results DIR] [--format tsv|md] [--self-test] [--min-pairs]
#
# Every goal of the issues that one dataset can decide (the first
# background text's, and issues 14 to 17), in one of four kinds, each on
# one experiment's CSV so that its repetitions can be paired:
#   ratio       two systems' medians (tun / openvpn-udp >= 7)
#   difference  two medians of one system (RTT under load - idle <= 1 ms)
#   one         one system's median against a threshold (CPU <= 3 s/GB)
#   every       a count or flag that every repetition must satisfy
#               (0 duplicate sessions, inner TCP survived)
# A repetition's value is the median of its rows (ping writes one row per
# echo). Experiments that interleave repetitions across systems measure
# repetition k of tun and of the relay next to each other, and the two
# terms of a difference come from the same test: repetition k of each term
# forms a pair, and the bootstrap resamples pairs (with replacement),
# recomputing the statistic (ratio or difference of medians, or median)
# each time. The 95 % interval is the 2.5th and 97.5th percentile of
# those, from a fixed seed so that the same CSV always gives the same
# interval. An "every" goal has no interval: it is a statement about each
# trial, so one repetition that misses it (or has no row where the
# system's other rows of that parameter say it ran) decides it.
#
# Verdicts, for a goal "at least T" (mirrored for "at most T"):
#   met              the interval's lower end is >= T (every: each repetition
#                    satisfies it)
#   not met          the interval's upper end is < T (every: a repetition
#                    misses it, however few there are)
#   level            the interval contains T: the data cannot tell (never
#                    for every: a trial either satisfies it or does not)
#   too few runs     fewer than GOAL_MIN_PAIRS pairs: no interval worth the name
#   no data          a system or metric is missing from the CSV
# Output: TSV (name, text, op, threshold, unit, n, estimate, low, high,
# verdict, kind; an every goal's estimate is its worst repetition, low and
# high the range) or a Markdown table. Standard library only (Debian's
# python3, no pip).
import argparse
import csv
import os
import random
import sys
import tempfile

SEED = 19
RESAMPLES = 4000
LEVEL = 0.95
GOAL_MIN_PAIRS = 3
NO_DATA = "no data"
NAT_KEEPALIVE_MS = 5000    # tunlab's default --keepalive (5 s): the nat experiment's unless SYS_KEEPALIVE says otherwise


def goal(name, text, exp, kind, a, b, op, threshold, unit):
    """a, b: (system, parameter, metric); b is None for one and every."""
    return {"name": name, "text": text, "exp": exp, "kind": kind, "a": a, "b": b,
            "op": op, "threshold": threshold, "unit": unit}


def ratio(name, text, exp, param, metric, num, den, op, threshold):
    return goal(name, text, exp, "ratio", (num, param, metric), (den, param, metric), op, threshold, "x")


FRONTENDS = [("tun", "Tun", "tun"), ("nfqueue", "Nfqueue", "nfqueue"), ("pcap", "Pcap", "pcap")]
# Systems of the packet-rate experiment's default set beside plain.
PKTRATE_OTHERS = [("tun", "Tun"), ("nfqueue", "Nfqueue"), ("pcap", "Pcap"), ("proxy", "Proxy"),
                  ("openvpn-udp", "OpenvpnUdp"), ("openvpn-tcp", "OpenvpnTcp"),
                  ("wireguard-go", "WireguardGo")]
# The loss experiment's points (LOSS_RATES x LOSS_RTTS), macro-safe names.
LOSS_POINTS = [("0", "0", "NoLoss"), ("0.1", "0", "LossTenth"), ("1", "0", "LossOne"),
               ("0", "20", "NoLossDelay"), ("0.1", "20", "LossTenthDelay"), ("1", "20", "LossOneDelay")]


def all_goals():
    g = [
        # The first background text.
        ratio("GoalTunOpenvpn", "tun / OpenVPN-UDP throughput", "throughput", "streams=1", "throughput",
              "tun", "openvpn-udp", "ge", 7.0),
        ratio("GoalTunRelay", "tun / TLS relay throughput", "throughput", "streams=1", "throughput",
              "tun", "tls-relay", "ge", 1.0),
        goal("GoalTunCpuCli", "tun CPU per GB, client", "throughput", "one",
             ("tun", "streams=1", "cpu_client"), None, "le", 3.0, "s/GB"),
        goal("GoalTunCpuSrv", "tun CPU per GB, server", "throughput", "one",
             ("tun", "streams=1", "cpu_server"), None, "le", 3.0, "s/GB"),
        ratio("GoalProxyRelay", "proxy / TLS relay throughput", "throughput", "streams=1", "throughput",
              "proxy", "tls-relay", "ge", 1.0),
        ratio("GoalNfqueueTun", "nfqueue / tun throughput (first text)", "throughput", "streams=1",
              "throughput", "nfqueue", "tun", "ge", 0.5),
    ]
    # Issue 17: latency under load, GSO injection, idle wake-ups, packet rate.
    for sys_id, key, label in FRONTENDS:
        g.append(goal("GoalRrul" + key, "%s RTT under 4-stream load - idle (#17)" % label, "rrul",
                      "difference", (sys_id, "load", "rtt"), (sys_id, "idle", "rtt"), "le", 1.0, "ms"))
    for sys_id, key, label in FRONTENDS[1:]:
        g.append(ratio("Goal%sTunGso" % key, "%s / tun throughput (#17)" % label, "throughput",
                       "streams=1", "throughput", sys_id, "tun", "ge", 0.8))
    g.append(ratio("GoalIdleRttOpenvpn", "tun / OpenVPN-UDP idle RTT (#17)", "rtt", "idle", "rtt",
                   "tun", "openvpn-udp", "le", 1.0))
    g.append(goal("GoalTcpRrTun", "tun TCP_RR p50 (#17)", "rtt", "one", ("tun", "size=1", "rr_p50_us"),
                  None, "le", 80.0, "µs"))
    # The same two with --busy-poll 200 at both ends (opt-in, not the default).
    g.append(ratio("GoalIdleRttOpenvpnPoll", "tun --busy-poll / OpenVPN-UDP idle RTT (#17)", "rtt", "idle",
                   "rtt", "tun-poll", "openvpn-udp", "le", 1.0))
    g.append(goal("GoalTcpRrTunPoll", "tun --busy-poll TCP_RR p50 (#17)", "rtt", "one",
                  ("tun-poll", "size=1", "rr_p50_us"), None, "le", 80.0, "µs"))
    for sys_id, key in PKTRATE_OTHERS:
        g.append(ratio("GoalPktrate" + key, "plain / %s 64-byte packet rate (#17)" % sys_id, "pktrate",
                       "loss<1%", "max_pps", "plain", sys_id, "ge", 5.0))
    # Issue 15: the UDP transport.
    # The default set's throughput and rrul leave tun-udp out (its budget:
    # systems.sh SYS_OPT_IN_ROWS); the loss set measures it beside tun, and
    # its clean point (no loss, no added delay) is the clean path: a
    # 1-stream upload with echoes beside it.
    g.append(ratio("GoalUdpTls", "tun-udp / tun goodput, clean path (#15)", "loss", "loss=0:rtt=0", "goodput",
                   "tun-udp", "tun", "ge", 1.0))
    for metric, key, end in (("cpu_client", "Cli", "client"), ("cpu_server", "Srv", "server")):
        g.append(ratio("GoalUdpCpu" + key, "tun-udp / tun CPU per GB, %s (#15)" % end, "throughput",
                       "streams=1", metric, "tun-udp", "tun", "le", 1.0))
    for loss, rtt, key in LOSS_POINTS:
        g.append(ratio("GoalLossUdp" + key, "tun-udp / plain goodput, loss %s %%, +%s ms (#15)" % (loss, rtt),
                       "loss", "loss=%s:rtt=%s" % (loss, rtt), "goodput", "tun-udp", "plain", "ge", 0.9))
    g.append(ratio("GoalUdpRtt", "tun-udp / tun RTT under a 1-stream upload (#15)", "loss", "loss=0:rtt=0",
                   "rtt", "tun-udp", "tun", "le", 1.0))
    g.append(goal("GoalNatIdle", "tun-udp recovery after an idle rebinding (#15)", "nat", "every",
                  ("tun-udp", "idle", "recovery_ms"), None, "le", NAT_KEEPALIVE_MS, "ms"))
    for kind, key in (("flush", "Flush"), ("newport", "Newport")):
        g.append(goal("GoalNat" + key, "tun-udp lost pings, NAT %s under traffic (#15)" % kind, "nat",
                      "every", ("tun-udp", kind, "lost_pings"), None, "le", 1, "pings"))
    # Issue 14: on-demand tunnels.
    for sys_id, key, label in FRONTENDS:
        g.append(goal("GoalAcquire" + key, "%s lazy start: datagrams received of 100 (#14)" % label,
                      "acquire", "every", (sys_id, "burst", "received"), None, "ge", 100, "datagrams"))
    # "first datagram delivered within the handshake time plus one round trip":
    # first_ms - established_ms - rtt_ms, per repetition (experiments/acquire).
    for sys_id, key, label in FRONTENDS:
        g.append(goal("GoalAcquireFirst" + key, "%s lazy start: first datagram - (set-up + 1 RTT) (#14)" % label,
                      "acquire", "every", (sys_id, "burst", "beyond_setup_rtt_ms"), None, "le", 0, "ms"))
    for sys_id, key, label in FRONTENDS:
        g.append(goal("GoalCrossingDup" + key, "%s crossing: duplicate sessions (#14)" % label, "crossing",
                      "every", (sys_id, "race", "dup_sessions"), None, "le", 0, "sessions"))
        g.append(goal("GoalCrossingClear" + key, "%s crossing: cleartext packets (#14)" % label, "crossing",
                      "every", (sys_id, "race", "cleartext"), None, "le", 0, "packets"))
    for sys_id, key, label in FRONTENDS:
        g.append(goal("GoalReloadFlow" + key, "%s policy reload under iperf3: flow undisturbed (#14)" % label,
                      "crossing", "every", (sys_id, "reload", "reload_flow_ok"), None, "ge", 1, "bool"))
    # Issue 16: failover.
    for sys_id, key, label in FRONTENDS:
        g.append(goal("GoalFailover" + key, "%s outage after kill -9 (#16)" % label, "failover", "one",
                      (sys_id, "kill9", "outage_ms"), None, "le", 500.0, "ms"))
        g.append(goal("GoalFailoverTcp" + key, "%s inner TCP survives kill -9 (#16)" % label, "failover",
                      "every", (sys_id, "kill9", "inner_tcp_survived"), None, "ge", 1, "bool"))
        g.append(goal("GoalSwitchover" + key, "%s lost pings in a switchover (#16)" % label, "failover",
                      "every", (sys_id, "switchover", "lost_pings"), None, "le", 0, "pings"))
    return g


GOALS = all_goals()


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


def statistic(pairs, kind="ratio"):
    """Ratio or difference of medians over (a, b) pairs; median of a for one."""
    a = median([p[0] for p in pairs])
    if kind == "one":
        return a
    b = median([p[1] for p in pairs])
    if kind == "difference":
        return a - b
    return a / b if b > 0 else float("inf")


def bootstrap(pairs, kind="ratio", seed=SEED, resamples=RESAMPLES, level=LEVEL):
    """(estimate, low, high) of statistic() over the pairs."""
    rng = random.Random(seed)
    n = len(pairs)
    stats = sorted(statistic([pairs[rng.randrange(n)] for _ in range(n)], kind) for _ in range(resamples))
    alpha = (1 - level) / 2
    return statistic(pairs, kind), percentile(stats, alpha), percentile(stats, 1 - alpha)


def satisfies(value, op, threshold):
    return value >= threshold if op == "ge" else value <= threshold


def verdict(low, high, op, threshold, n):
    """The verdict an interval supports (for every, low and high: any
    failing repetition's value makes low/high miss; see every_verdict)."""
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


def every_verdict(values, op, threshold):
    """values: one per repetition, None where the repetition has no row."""
    if any(v is None or not satisfies(v, op, threshold) for v in values):
        return "not met"
    return "too few runs" if len(values) < GOAL_MIN_PAIRS else "met"


def load(results, experiment):
    """{(system, parameter, metric): {repetition: value}} of a tidy CSV; a
    repetition with several rows (ping: one per echo) gets their median."""
    rows = {}
    path = os.path.join(results, experiment + ".csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                value = float(row["value"])
                rep = int(row["repetition"])
            except (KeyError, TypeError, ValueError):
                continue
            rows.setdefault((row["system"], row["parameter"], row["metric"]), {}).setdefault(rep, []).append(value)
    return {k: {r: median(v) for r, v in reps.items()} for k, reps in rows.items()}


def pairs_of(data, g):
    """The pairs (a, b) by repetition; (a, None) for one. A ratio's pair
    whose denominator is not above 0 is no measurement of the ratio (a
    packet-rate search in which no step passed wrote 0): it is left out,
    so that n counts the pairs used, and it cannot make a ratio infinite
    and a ">=" goal met. A numerator of 0 stays: it counts against."""
    a = data.get(g["a"])
    if not a:
        return None
    if g["b"] is None:
        return [(a[r], None) for r in sorted(a)]
    b = data.get(g["b"])
    if not b:
        return None
    keep = (lambda r: b[r] > 0) if g["kind"] == "ratio" else (lambda r: True)
    return [(a[r], b[r]) for r in sorted(set(a) & set(b)) if keep(r)]


def every_of(data, g):
    """a's value in each repetition in which the system has any row of a's
    parameter (None where a's metric is missing), or None without data."""
    system, param, _ = g["a"]
    reps = set()
    for (s, p, _), by_rep in data.items():
        if s == system and p == param:
            reps |= set(by_rep)
    a = data.get(g["a"], {})
    if not a:
        return None
    return [a.get(r) for r in sorted(reps)]


def evaluate(results):
    """One dict per goal, in GOALS order."""
    cache = {}
    out = []
    for g in GOALS:
        if g["exp"] not in cache:
            cache[g["exp"]] = load(results, g["exp"])
        data = cache[g["exp"]]
        r = dict(g, n=0, estimate=None, low=None, high=None, verdict=NO_DATA)
        if g["kind"] == "every":
            values = every_of(data, g)
            if values:
                seen = [v for v in values if v is not None]
                worst = (min if g["op"] == "ge" else max)(seen)
                r.update(n=len(values), estimate=worst, low=min(seen), high=max(seen),
                         verdict=every_verdict(values, g["op"], g["threshold"]))
        else:
            pairs = pairs_of(data, g)
            if pairs:
                est, low, high = bootstrap(pairs, g["kind"])
                r.update(n=len(pairs), estimate=est, low=low, high=high,
                         verdict=verdict(low, high, g["op"], g["threshold"], len(pairs)))
        out.append(r)
    return out


def fmt(v):
    if v is None:
        return "n/a"
    if v == float("inf"):
        return "inf"
    return "%.2f" % v if abs(v) < 10 else "%.1f" % v


def print_tsv(goals):
    print("name\ttext\top\tthreshold\tunit\tn\testimate\tlow\thigh\tverdict\tkind")
    for g in goals:
        print("\t".join([g["name"], g["text"], g["op"], "%g" % g["threshold"], g["unit"], str(g["n"]),
                         fmt(g["estimate"]), fmt(g["low"]), fmt(g["high"]), g["verdict"], g["kind"]]))


def print_md(goals):
    print("| goal | target | measured | 95 % interval | n | verdict |")
    print("|---|---|---|---|---|---|")
    for g in goals:
        sign = "≥" if g["op"] == "ge" else "≤"
        unit = "×" if g["unit"] == "x" else " " + g["unit"]
        target = "%s %g%s" % (sign, g["threshold"], unit)
        if g["unit"] == "bool":
            target = "yes"
        if g["kind"] == "every":
            target += " in every run"
        if g["estimate"] is None:
            measured, interval = "n/a", "n/a"
        elif g["kind"] == "every":
            measured, interval = "worst %s" % fmt(g["estimate"]), "(every run checked)"
        else:
            measured = fmt(g["estimate"])
            interval = "%s – %s" % (fmt(g["low"]), fmt(g["high"]))
        print("| %s | %s | %s | %s | %d | %s |" % (g["text"], target, measured, interval, g["n"], g["verdict"]))


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
    est, low, high = bootstrap(single, "one")
    check("one-system median", est, 2.2)
    check("one-system le met", verdict(low, high, "le", 3.0, 5), "met")
    # A difference of one system's two medians (RTT under load - idle), paired
    # by repetition: about 1.5 ms apart fails "<= 1 ms", meets "<= 2 ms".
    rtt = [(0.3 + 1.5 + 0.02 * k, 0.3 + 0.01 * k) for k in range(5)]
    est, low, high = bootstrap(rtt, "difference")
    check("difference of medians", round(est, 4), round(median([p[0] for p in rtt]) - median([p[1] for p in rtt]), 4))
    check("difference not met", verdict(low, high, "le", 1.0, 5), "not met")
    check("difference met", verdict(low, high, "le", 2.0, 5), "met")
    check("difference level", verdict(low, high, "le", est, 5), "level")
    # Every repetition: one failure decides, at any n; a missing row fails.
    check("every met", every_verdict([0, 0, 0, 0, 0], "le", 0), "met")
    check("every not met", every_verdict([0, 0, 1, 0, 0], "le", 0), "not met")
    check("every missing row", every_verdict([100, None, 100], "ge", 100), "not met")
    check("every one failure of two", every_verdict([99, 100], "ge", 100), "not met")
    check("every too few", every_verdict([100, 100], "ge", 100), "too few runs")
    # A ratio's zero denominator (a search that found no passing rate) is
    # left out, not an infinite ratio that meets ">= 5x"; a zero numerator stays.
    g = {"a": ("plain", "p", "m"), "b": ("tun", "p", "m"), "kind": "ratio"}
    data = {g["a"]: {1: 230.0, 2: 240.0, 3: 235.0, 4: 231.0}, g["b"]: {1: 130.0, 2: 0.0, 3: 140.0, 4: 120.0}}
    check("zero denominator left out", pairs_of(data, g), [(230.0, 130.0), (235.0, 140.0), (231.0, 120.0)])
    data[g["b"]][2], data[g["a"]][3] = 125.0, 0.0
    check("zero numerator kept", pairs_of(data, g)[2], (0.0, 140.0))
    # Several rows in a repetition (one per echo) reduce to their median.
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "rrul.csv"), "w") as f:
            f.write("system,parameter,metric,value,unit,repetition\n")
            for rep in (1, 2, 3):
                for v in (0.1, 0.2, 9.0):
                    f.write("tun,idle,rtt,%g,ms,%d\n" % (v, rep))
        check("per-repetition median", load(d, "rrul")[("tun", "idle", "rtt")], {1: 0.2, 2: 0.2, 3: 0.2})
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
    ap.add_argument("--min-pairs", action="store_true", help="print GOAL_MIN_PAIRS and exit")
    args = ap.parse_args()
    if args.min_pairs:
        print(GOAL_MIN_PAIRS)
        return 0
    if args.self_test:
        return self_test()
    goals = evaluate(args.results)
    (print_md if args.format == "md" else print_tsv)(goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
