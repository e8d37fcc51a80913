#!/usr/bin/env python3
"""Parsing and reporting for bench/run.sh.

Owns: reading one wrk --latency output into numbers (`wrk`), and turning the
per-run numbers plus the idle-memory results into the Markdown report
(`summary`). Must not: run or time anything itself; it only reads files that
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
# The target for memory per idle client connection.
GOAL_KIB_PER_CONN = 16.0


def latency_ms(text):
    """'512.00us' -> 0.512"""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unparsable latency {text!r}")
    return float(match.group(1)) * UNIT_TO_MS[match.group(2)]


def parse_wrk(text):
    """Requests/s, p50, p99 (ms) and error count from one wrk --latency run."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if not (rps and p50 and p99):
        raise ValueError("not a complete wrk --latency output")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return float(rps.group(1)), latency_ms(p50.group(1)), latency_ms(p99.group(1)), errors


def read_runs(path):
    """runs.tsv: target round rps p50_ms p99_ms errors cpu_pct other_pct"""
    runs = {}
    with open(path, encoding="utf-8") as tsv:
        for line in tsv:
            target, rnd, rps, p50, p99, errors, cpu, other = line.split()
            runs.setdefault(target, []).append(
                {"round": int(rnd), "rps": float(rps), "p50": float(p50),
                 "p99": float(p99), "errors": int(errors), "cpu": float(cpu),
                 "other": float(other)})
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
    """clean-rounds: one round number a line (rounds no neighbour disturbed)."""
    if not path:
        return set()
    with open(path, encoding="utf-8") as lines:
        return {int(line) for line in lines if line.strip()}


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


def throughput_section(runs, order, clean=frozenset(), quiet_pct=25):
    """The median table, the ratio line, and every run for the record."""
    all_runs = runs
    runs, which = pick_rounds(runs, clean, quiet_pct)
    out = ["## Throughput and latency (medians)", "", which, "",
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
    elif "pentaflow" not in med:
        out += ["pentaflow: pending (no pentaflow run in this report).", ""]
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


def memory_section(mem, order):
    """Resident memory per idle client connection."""
    if not mem:
        return []
    out = ["## Memory per idle client connection", "",
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
        verdict = "met" if kib <= GOAL_KIB_PER_CONN else "not met"
        out += [f"pentaflow: {kib:.2f} KiB per idle connection "
                f"(goal <= {GOAL_KIB_PER_CONN:.0f} KiB: {verdict}).", ""]
    return out


def summary(args):
    """The whole report: header lines from run.sh, then the two sections."""
    order = args.order.split(",")
    with open(args.header, encoding="utf-8") as header:
        out = [header.read().rstrip("\n"), ""]
    out += throughput_section(read_runs(args.runs), order, read_clean(args.clean),
                              args.quiet_pct)
    out += memory_section(read_mem(args.mem), order)
    print("\n".join(out))


def main(argv):
    """`wrk FILE` or `summary --runs ... --mem ... --header ... --order ...`"""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    wrk = sub.add_parser("wrk", help="print 'rps p50_ms p99_ms errors' of one wrk output")
    wrk.add_argument("file")
    summ = sub.add_parser("summary", help="print the Markdown report")
    summ.add_argument("--runs", required=True)
    summ.add_argument("--mem")
    summ.add_argument("--clean", help="file of clean round numbers")
    summ.add_argument("--quiet-pct", type=int, default=25)
    summ.add_argument("--header", required=True)
    summ.add_argument("--order", default="pentaflow,haproxy,nginx,direct")
    args = parser.parse_args(argv)
    if args.cmd == "wrk":
        with open(args.file, encoding="utf-8") as f:
            rps, p50, p99, errors = parse_wrk(f.read())
        print(f"{rps:.2f} {p50:.4f} {p99:.4f} {errors}")
    else:
        summary(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
