#!/usr/bin/env python3
"""Parsing and reporting for bench/run.sh.

Owns: reading one wrk --latency output into numbers (`wrk`), and turning the
per-run numbers of every scenario plus the idle-memory results into the
Markdown report (`summary`): per scenario the medians, the ratios against the
better rival and the user/system CPU per request; across scenarios an
overview, the two-worker scaling and the cost of the access log. Must not: run or time anything itself; it only reads files that
run.sh wrote, so a report can be rebuilt from a kept work directory.
"""

import argparse
import json
import re
import statistics
import sys

# wrk prints latencies with a unit suffix; everything is reported in ms.
UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
# The proxies compared against pentaflow, in the issue's words "the better of
# HAProxy and nginx".
RIVALS = ("haproxy", "nginx")
# Issue 10's targets: memory per idle client connection, requests per proxy
# CPU-second against the better rival (600 B), and the large responses.
GOAL_KIB_PER_CONN = 1.0
GOAL_PER_CPU_BASE = 1.2
GOAL_PER_CPU_LARGE = 1.0
# Scenario order of the report (bench/run.sh's BENCH_SCENARIOS names).
SCENARIO_ORDER = ("base", "16k", "256k", "c1000", "w2", "log")


def latency_ms(text):
    """'512.00us' -> 0.512"""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparsable latency {text!r}")
    return float(match.group(1)) * UNIT_TO_MS[match.group(2)]


def parse_wrk(text):
    """Requests/s, p50, p99 (ms), error count and requests completed from one
    wrk --latency run."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    done = re.search(r"^\s+(\d+) requests in ", text, re.M)
    if not (rps and p50 and p99 and done):
        raise ValueError("not a complete wrk --latency output")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return (float(rps.group(1)), latency_ms(p50.group(1)), latency_ms(p99.group(1)), errors,
            int(done.group(1)))


def read_runs(path):
    """runs.tsv, one run a line, grouped as {scenario: {target: [run, ...]}}:
    `scenario target round rps p50_ms p99_ms errors cpu_pct other_pct
    user_ticks sys_ticks requests`, or the older eight columns without the
    scenario and the last three (read as scenario "base")."""
    runs = {}
    with open(path, encoding="utf-8") as tsv:
        for line in tsv:
            cols = line.split()
            if not cols:
                continue
            if len(cols) == 8:
                cols = ["base", *cols, "-", "-", "-"]
            if len(cols) != 12:
                raise ValueError(f"runs.tsv: bad line {line!r}")
            scenario, target, rnd, rps, p50, p99, errors, cpu, other, user, sys_, done = cols
            runs.setdefault(scenario, {}).setdefault(target, []).append(
                {"round": int(rnd), "rps": float(rps), "p50": float(p50),
                 "p99": float(p99), "errors": int(errors), "cpu": float(cpu),
                 "other": float(other),
                 "user": None if user == "-" else int(user),
                 "sys": None if sys_ == "-" else int(sys_),
                 "requests": None if done == "-" else int(done)})
    return runs


def read_mem(path):
    """mem.tsv: target <TAB> JSON printed by idle_conns.py"""
    mem = {}
    if path:
        with open(path, encoding="utf-8") as tsv:
            for line in tsv:
                target, _, blob = line.rstrip("\n").partition("\t")
                mem[target] = json.loads(blob)
    return mem


def medians(samples):
    """Median of every measured column over the runs of one target."""
    return {key: statistics.median(s[key] for s in samples)
            for key in ("rps", "p50", "p99", "cpu", "other")} | {
        # Requests per second of proxy CPU: the cost of one request, which a
        # busy neighbour disturbs far less than the raw rate.
        "per_cpu": statistics.median(s["rps"] / (s["cpu"] / 100) if s["cpu"] > 0 else 0.0
                                     for s in samples),
        "errors": sum(s["errors"] for s in samples),
        "min": min(s["rps"] for s in samples),
        "max": max(s["rps"] for s in samples),
        "n": len(samples)}


def read_clean(path):
    """clean-rounds: `SCENARIO ROUND` a line (rounds no neighbour disturbed),
    or a bare round number (scenario "base"); as {scenario: {round, ...}}."""
    clean = {}
    if not path:
        return clean
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            cols = line.split()
            if len(cols) == 1:
                cols = ["base", cols[0]]
            if len(cols) == 2:
                clean.setdefault(cols[0], set()).add(int(cols[1]))
    return clean


def read_scenarios(path):
    """scenarios.tsv: `NAME<TAB>what it is<TAB>pinning`, in run order."""
    described = {}
    if path:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                name, _, rest = line.rstrip("\n").partition("\t")
                what, _, pin = rest.partition("\t")
                described[name] = (what, pin)
    return described


def cpu_per_request(samples, hz):
    """Median user and system CPU microseconds per request, or None when the
    runs carry no split (older runs.tsv)."""
    split = [s for s in samples if s["user"] is not None and s["requests"]]
    if not split:
        return None
    user = statistics.median(s["user"] / hz * 1e6 / s["requests"] for s in split)
    system = statistics.median(s["sys"] / hz * 1e6 / s["requests"] for s in split)
    return user, system


def pick_rounds(runs, clean, quiet_pct):
    """Runs the medians are taken over, and a sentence saying which.

    Rounds are alternated, so keeping or dropping whole rounds keeps the
    targets paired: each target is compared over the same stretches of time.
    """
    total = len({s["round"] for samples in runs.values() for s in samples})
    if not clean:
        return runs, (f"Medians over all {total} rounds. No round was clean (other CPU < "
                      f"{quiet_pct}% in every run): these numbers are disturbed by other "
                      "processes on the machine.")
    kept = {t: [s for s in samples if s["round"] in clean] for t, samples in runs.items()}
    return kept, (f"Medians over the {len(clean)} clean rounds of {total} (rounds "
                  f"{', '.join(map(str, sorted(clean)))}: other CPU < {quiet_pct}% in every "
                  "run of the round); every run is listed below.")


def throughput_section(runs, order, clean=frozenset(), quiet_pct=25,
                       title="Throughput and latency (medians)", scenario="base", hz=None):
    """The median table, the ratio lines, the CPU per request, and every run
    for the record."""
    all_runs = runs
    runs, which = pick_rounds(runs, clean, quiet_pct)
    out = [f"## {title}", "", which, "",
           "| target | req/s | p50 ms | p99 ms | proxy CPU % | req per proxy CPU-s "
           "| other CPU % | errors | runs | req/s min-max |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    med = {t: medians(runs[t]) for t in order if t in runs}
    for target, m in med.items():
        cpu = "-" if target == "direct" else f"{m['cpu']:.0f}"
        per_cpu = "-" if target == "direct" else f"{m['per_cpu']:,.0f}"
        out.append(f"| {target} | {m['rps']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {cpu} "
                   f"| {per_cpu} | {m['other']:.0f} | {m['errors']} | {m['n']} | {m['min']:,.0f}-{m['max']:,.0f} |")
    out += ["", "proxy CPU %: user+system time of the proxy's processes over the run, in % of one "
            "core; req per proxy CPU-s: requests/s divided by that (the cost of a request). other CPU %: what every other process on the machine used meanwhile (not wrk, "
            "the back-end or the proxy); it should be near 0, and a high value marks a run "
            "disturbed by a neighbour.", ""]
    rivals = [t for t in RIVALS if t in med]
    if "pentaflow" in med and rivals:
        best = max(rivals, key=lambda t: med[t]["rps"])
        pf, bm = med["pentaflow"], med[best]
        rps_ratio = pf["rps"] / bm["rps"]
        p99_ratio = pf["p99"] / bm["p99"]
        met = rps_ratio >= 1.0 and p99_ratio <= 1.0
        out += [f"pentaflow / {best} (the better rival by req/s): "
                f"req/s x{rps_ratio:.2f}, p99 x{p99_ratio:.2f} "
                f"(goal: req/s >= x1.00 at p99 <= x1.00: {'met' if met else 'not met'})", ""]
        best_cpu = max(rivals, key=lambda t: med[t]["per_cpu"])
        if med[best_cpu]["per_cpu"] > 0:
            cpu_ratio = pf["per_cpu"] / med[best_cpu]["per_cpu"]
            goal = {"base": GOAL_PER_CPU_BASE, "16k": GOAL_PER_CPU_LARGE,
                    "256k": GOAL_PER_CPU_LARGE}.get(scenario)
            verdict = "" if goal is None else (
                f" (goal: >= x{goal:.2f}: {'met' if cpu_ratio >= goal else 'not met'})")
            out += [f"pentaflow / {best_cpu} (the better rival per CPU-second): "
                    f"req per proxy CPU-s x{cpu_ratio:.2f}{verdict}", ""]
    elif "pentaflow" not in med:
        out += ["pentaflow: pending (no pentaflow run in this report).", ""]
    if hz:
        out += cpu_split_section(runs, order, hz)
    out += undisturbed_section(all_runs, order, quiet_pct)
    out += ["<details><summary>every run</summary>", "",
            "| round | target | req/s | p50 ms | p99 ms | proxy CPU % | other CPU % | errors |",
            "|---:|---|---:|---:|---:|---:|---:|---:|"]
    rows = sorted((s["round"], order.index(t), t, s) for t in med for s in all_runs[t])
    for rnd, _, target, s in rows:
        out.append(f"| {rnd} | {target} | {s['rps']:,.0f} | {s['p50']:.3f} | {s['p99']:.3f} "
                   f"| {s['cpu']:.0f} | {s['other']:.0f} | {s['errors']} |")
    out += ["", "</details>", ""]
    return out


def cpu_split_section(runs, order, hz):
    """User and system CPU per request of each proxy (medians over the runs
    the section's medians use)."""
    rows = []
    for target in (t for t in order if t in runs and t != "direct"):
        split = cpu_per_request(runs[target], hz)
        if split:
            user, system = split
            rows.append(f"| {target} | {user:.2f} | {system:.2f} | {user + system:.2f} |")
    if not rows:
        return []
    return ["CPU per request (µs, from /proc/PID/stat utime and stime over the run, divided by "
            "the requests wrk completed):", "",
            "| proxy | user µs/req | system µs/req | total µs/req |",
            "|---|---:|---:|---:|", *rows, ""]


def overview_section(runs, clean, quiet_pct, order, described, hz):
    """One line per scenario: pentaflow against the better rival."""
    out = ["## Overview: pentaflow against the better of HAProxy and nginx", "",
           "| scenario | what | pentaflow req/s | x req/s | x p99 | pentaflow req per CPU-s "
           "| x per CPU-s | pentaflow user / system µs per req |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for scenario in ordered(runs):
        kept, _ = pick_rounds(runs[scenario], clean.get(scenario, set()), quiet_pct)
        med = {t: medians(kept[t]) for t in order if t in kept and kept[t]}
        rivals = [t for t in RIVALS if t in med]
        what = described.get(scenario, ("", ""))[0]
        if "pentaflow" not in med or not rivals:
            out.append(f"| {scenario} | {what} | pending | - | - | - | - | - |")
            continue
        pf = med["pentaflow"]
        by_rate = max(rivals, key=lambda t: med[t]["rps"])
        by_cpu = max(rivals, key=lambda t: med[t]["per_cpu"])
        split = cpu_per_request(kept["pentaflow"], hz) if hz else None
        split_text = f"{split[0]:.2f} / {split[1]:.2f}" if split else "-"
        cpu_ratio = pf["per_cpu"] / med[by_cpu]["per_cpu"] if med[by_cpu]["per_cpu"] else 0.0
        out.append(
            f"| {scenario} | {what} | {pf['rps']:,.0f} | x{pf['rps'] / med[by_rate]['rps']:.2f} "
            f"({by_rate}) | x{pf['p99'] / med[by_rate]['p99']:.2f} | {pf['per_cpu']:,.0f} "
            f"| x{cpu_ratio:.2f} ({by_cpu}) | {split_text} |")
    return out + ["", "x: pentaflow divided by the better rival (named) by that column; p99 below "
                  "x1.00 is better. Each scenario's own section has the medians of every proxy.",
                  ""]


def scaling_section(runs, clean, quiet_pct, order):
    """Two workers on both cores (w2) against one pinned worker (base)."""
    if "base" not in runs or "w2" not in runs:
        return []
    one = pick_rounds(runs["base"], clean.get("base", set()), quiet_pct)[0]
    two = pick_rounds(runs["w2"], clean.get("w2", set()), quiet_pct)[0]
    out = ["## Scaling: 2 workers (w2) against 1 (base)", "",
           "| target | 1 worker req/s | 2 workers req/s | x rate | 1 worker req per CPU-s "
           "| 2 workers req per CPU-s |", "|---|---:|---:|---:|---:|---:|"]
    for target in (t for t in order if t in one and t in two and one[t] and two[t]):
        a, b = medians(one[target]), medians(two[target])
        per = ("-", "-") if target == "direct" else (f"{a['per_cpu']:,.0f}", f"{b['per_cpu']:,.0f}")
        out.append(f"| {target} | {a['rps']:,.0f} | {b['rps']:,.0f} | x{b['rps'] / a['rps']:.2f} "
                   f"| {per[0]} | {per[1]} |")
    return out + ["", "With two workers nothing is pinned: wrk, the back-end and the proxy share "
                  "both cores, so the rate is bounded by the whole machine, not the proxy alone.",
                  ""]


def logging_section(runs, clean, quiet_pct, order):
    """The cost of the access log: log against base, per proxy."""
    if "base" not in runs or "log" not in runs:
        return []
    off = pick_rounds(runs["base"], clean.get("base", set()), quiet_pct)[0]
    on = pick_rounds(runs["log"], clean.get("log", set()), quiet_pct)[0]
    out = ["## The cost of the access log (log against base)", "",
           "| proxy | log off req per CPU-s | log on req per CPU-s | CPU per request, logging "
           "costs |", "|---|---:|---:|---:|"]
    for target in (t for t in order if t in off and t in on and t != "direct"):
        if not off[target] or not on[target]:
            continue
        a, b = medians(off[target])["per_cpu"], medians(on[target])["per_cpu"]
        cost = (a / b - 1) * 100 if b else 0.0
        out.append(f"| {target} | {a:,.0f} | {b:,.0f} | +{cost:.0f}% |")
    return out + [""]


def ordered(runs):
    """Scenarios in the report's order, unknown ones last."""
    known = [s for s in SCENARIO_ORDER if s in runs]
    return known + sorted(s for s in runs if s not in SCENARIO_ORDER)


def undisturbed_section(runs, order, quiet_pct):
    """Per target, the median of its own undisturbed runs.

    Not paired in time like the rounds are, but on a shared machine it is
    often the only view with several runs per target that no neighbour
    slowed down.
    """
    out = [f"Per target, only its runs with other CPU < {quiet_pct}% (not paired by round):", "",
           "| target | undisturbed runs | req/s | p50 ms | p99 ms | proxy CPU % "
           "| req per proxy CPU-s |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for target in (t for t in order if t in runs):
        quiet = [s for s in runs[target] if s["other"] < quiet_pct]
        if not quiet:
            out.append(f"| {target} | 0 | - | - | - | - | - |")
            continue
        m = medians(quiet)
        per_cpu = "-" if target == "direct" else f"{m['per_cpu']:,.0f}"
        cpu = "-" if target == "direct" else f"{m['cpu']:.0f}"
        out.append(f"| {target} | {m['n']} | {m['rps']:,.0f} | {m['p50']:.3f} | {m['p99']:.3f} "
                   f"| {cpu} | {per_cpu} |")
    return out + [""]


def memory_section(mem, order, goal_kib=GOAL_KIB_PER_CONN, title="Memory per idle client connection"):
    """Resident memory per idle client connection."""
    if not mem:
        return []
    out = [f"## {title}", "",
           "| proxy | mode | held open | VmRSS before MiB | VmRSS after MiB "
           "| KiB/conn (VmRSS) | KiB/conn (RssAnon) |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for target in (t for t in order if t in mem):
        r = mem[target]
        if "error" in r:
            out.append(f"| {target} | - | - | - | - | {r['error']} | - |")
            continue
        out.append(
            f"| {target} | {r['mode']} | {r['still_open']:,}/{r['requested']:,} "
            f"| {r['before_kib']['VmRSS'] / 1024:.1f} | {r['after_kib']['VmRSS'] / 1024:.1f} "
            f"| {r['vmrss_kib_per_conn']:.2f} | {r['rssanon_kib_per_conn']:.2f} |")
    out.append("")
    if "pentaflow" in mem and "error" not in mem["pentaflow"]:
        kib = mem["pentaflow"]["vmrss_kib_per_conn"]
        verdict = "met" if kib <= goal_kib else "not met"
        out += [f"pentaflow: {kib:.2f} KiB per idle connection "
                f"(goal <= {goal_kib:.0f} KiB: {verdict}).", ""]
    return out


def read_syscalls(path):
    """syscalls.tsv -> {scenario: {target: ({event: count}, requests, user, sys)}}."""
    out = {}
    if not path:
        return out
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) != 7:
            continue
        scenario, target, event = fields[:3]
        count, requests, user, sys_ticks = (int(x) for x in fields[3:])
        entry = out.setdefault(scenario, {}).setdefault(target, [{}, requests, user, sys_ticks])
        entry[0][event] = count
    return out


def syscalls_section(counted, order, hz, floor=0.05):
    """Per scenario: system calls per request by name for each proxy (those
    that any proxy makes at least `floor` times per request), their total,
    context switches, and user/system µs per request of the same run."""
    out = []
    for scenario in [s for s in SCENARIO_ORDER if s in counted] + \
            sorted(s for s in counted if s not in SCENARIO_ORDER):
        targets = [t for t in order if t in counted[scenario]]
        per = {t: {ev: n / max(counted[scenario][t][1], 1)
                   for ev, n in counted[scenario][t][0].items()} for t in targets}
        names = sorted({ev for t in targets for ev, v in per[t].items()
                        if v >= floor and ev != "context-switches"},
                       key=lambda ev: -max(per[t].get(ev, 0) for t in targets))
        out += [f"### System calls per request, scenario {scenario} (perf stat, one run each)", "",
                "| per request | " + " | ".join(targets) + " |",
                "|---|" + "---:|" * len(targets)]
        for ev in names:
            out.append(f"| {ev} | " + " | ".join(f"{per[t].get(ev, 0):.2f}" for t in targets) + " |")
        total = {t: sum(v for ev, v in per[t].items() if ev != "context-switches") for t in targets}
        out.append("| **all system calls** | " + " | ".join(f"**{total[t]:.2f}**" for t in targets) + " |")
        out.append("| context switches | " + " | ".join(
            f"{per[t].get('context-switches', 0):.2f}" for t in targets) + " |")
        if hz:
            cells = []
            for t in targets:
                _, requests, user, sys_ticks = counted[scenario][t]
                us = 1e6 / hz / max(requests, 1)
                cells.append(f"{user * us:.2f} / {sys_ticks * us:.2f}")
            out.append("| user / system µs | " + " | ".join(cells) + " |")
        out += ["", "(requests: " + ", ".join(
            f"{t} {counted[scenario][t][1]:,}" for t in targets) + ")", ""]
    return out


def summary(args):
    """The whole report: header lines from run.sh, the overview, one section
    per scenario, scaling, logging, memory."""
    order = args.order.split(",")
    with open(args.header, encoding="utf-8") as header:
        out = [header.read().rstrip("\n"), ""]
    runs, clean = read_runs(args.runs), read_clean(args.clean)
    described = read_scenarios(args.scenarios)
    out += overview_section(runs, clean, args.quiet_pct, order, described, args.hz)
    for scenario in ordered(runs):
        what, pin = described.get(scenario, ("", ""))
        title = f"Scenario {scenario}: {what}" if what else f"Scenario {scenario}"
        if pin:
            title += f" (pinning: {pin})"
        out += throughput_section(runs[scenario], order, clean.get(scenario, set()),
                                  args.quiet_pct, title=title, scenario=scenario, hz=args.hz)
    out += scaling_section(runs, clean, args.quiet_pct, order)
    out += logging_section(runs, clean, args.quiet_pct, order)
    out += memory_section(read_mem(args.mem), order)
    out += syscalls_section(read_syscalls(args.syscalls), order, args.hz)
    print("\n".join(out))


def main(argv):
    """`wrk FILE` or `summary --runs ... --mem ... --header ... --order ...`"""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    wrk = sub.add_parser("wrk", help="print 'rps p50_ms p99_ms errors requests' of one wrk output")
    wrk.add_argument("file")
    summ = sub.add_parser("summary", help="print the Markdown report")
    summ.add_argument("--runs", required=True)
    summ.add_argument("--mem")
    summ.add_argument("--clean", help="file of clean round numbers")
    summ.add_argument("--quiet-pct", type=int, default=25)
    summ.add_argument("--header", required=True)
    summ.add_argument("--order", default="pentaflow,haproxy,nginx,direct")
    summ.add_argument("--scenarios", help="scenarios.tsv: what each scenario is")
    summ.add_argument("--hz", type=int, help="clock ticks per second (getconf CLK_TCK)")
    summ.add_argument("--syscalls", help="syscalls.tsv of BENCH_SYSCALLS=1")
    args = parser.parse_args(argv)
    if args.cmd == "wrk":
        with open(args.file, encoding="utf-8") as f:
            rps, p50, p99, errors, done = parse_wrk(f.read())
        print(f"{rps:.2f} {p50:.4f} {p99:.4f} {errors} {done}")
    else:
        summary(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
