#!/usr/bin/env python3
"""Parsing and reporting for bench/tls.sh, bench/cdn.sh and bench/l4.sh.

Owns: reading the outputs of the load tools these scripts run (wrk, openssl
s_time, criterion, the l4_pps lab example) into numbers, and turning the
per-run rows (runs.tsv) into one Markdown report per suite: medians per case
and target, CPU cost, neighbour noise, ratios and the issues' goals.
Must not: run or time anything itself; it only reads files the scripts wrote,
so a report can be rebuilt from a kept raw directory.

runs.tsv, tab-separated, one measured run a line:
    case  target  round  rate/s  p99_ms|-  cpu_pct|-  other_pct|-  errors
"""

import argparse
import re
import statistics
import sys

import report

# A run is "undisturbed" when other processes used less than this share of a
# core meanwhile (the same threshold as bench/run.sh).
DEFAULT_QUIET_PCT = 25
# Issue 6: a cached rewritten page at >= 90% of the unrewritten rate.
CDN_CACHED_GOAL = 0.90
# Issue 10: an idle TLS client connection in at most this many KiB, and HTTPS
# keep-alive at >= x1.1 of the better rival per CPU-second.
TLS_IDLE_GOAL_KIB = 8.0
TLS_KEEPALIVE_GOAL = 1.1
# Issue 4: the AF_PACKET scheduler at >= 50% of the kernel's forwarding rate.
L4_GOAL = 0.50
# criterion's throughput units, in MB/s (criterion's MiB/GiB are binary).
THRPT_TO_MBS = {"B/s": 1e-6, "KiB/s": 1024 / 1e6, "MiB/s": 1024**2 / 1e6,
                "GiB/s": 1024**3 / 1e6}


def parse_stime(text, wall):
    """Connections/s over `wall` seconds and connections not resumed, from one
    or more concatenated `openssl s_time` outputs.

    Every connection prints one character: 'r' for a resumed session, '*' for
    a full TLS 1.2/1.3 handshake. The rate counts every connection; in -reuse
    mode the '*' count says how many were not actually resumed.
    """
    counts = [int(n) for n in re.findall(r"^(\d+) connections in \d+ real seconds", text, re.M)]
    if not counts:
        raise ValueError("no complete s_time output")
    if wall <= 0:
        raise ValueError("wall time must be positive")
    marks = "".join(line for line in text.splitlines() if re.fullmatch(r"[r*]+", line))
    reuse = "session id reuse" in text
    not_resumed = marks.count("*") if reuse else 0
    return sum(counts) / wall, not_resumed


def parse_criterion(text):
    """{benchmark id: median throughput in MB/s} from `cargo bench` output.

    criterion prints `thrpt:  [low median high]` under each benchmark id; the
    middle value is the estimate reported.
    """
    out, current = {}, None
    for line in text.splitlines():
        head = re.match(r"^(\S+/\S+)\s*(time:|$)", line)
        if head:
            current = head.group(1)
        thrpt = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if thrpt and current:
            out[current] = float(thrpt.group(1)) * THRPT_TO_MBS[thrpt.group(2)]
    return out


def parse_l4pps(text):
    """Rows of the l4_pps example: {'kernel': (sent_pps, fwd_pps), 'scheduler': (..),
    'xdp': (..) when the XDP row is there, 'per_busy': {row: frames per busy CPU-s of the
    whole machine}, 'xdp_ns': ns per packet in the XDP program or None,
    'frames_per_cpu_s': float or None}."""
    out = {"frames_per_cpu_s": None, "per_busy": {}, "xdp_ns": None}
    for line in text.splitlines():
        row = re.match(r"^(kernel IP forwarding|pentaflow scheduler \((AF_PACKET|XDP)[^)]*\))"
                       r".*?\s([0-9]+)\s+([0-9]+)\s+[0-9]+\s+-?[0-9.]+%"
                       r"(?:\s+[0-9.]+\s+([0-9]+))?$", line)
        if row:
            key = {"AF_PACKET": "scheduler", "XDP": "xdp"}.get(row.group(2), "kernel")
            out[key] = (float(row.group(3)), float(row.group(4)))
            if row.group(5):
                out["per_busy"][key] = float(row.group(5))
        cpu = re.search(r"= ([0-9]+) frames per CPU-second", line)
        if cpu:
            out["frames_per_cpu_s"] = float(cpu.group(1))
        ns = re.search(r"runs, ([0-9.]+) ns per packet in the program", line)
        if ns:
            out["xdp_ns"] = float(ns.group(1))
    if "kernel" not in out or "scheduler" not in out:
        raise ValueError("not a complete l4_pps output")
    return out


def num(text):
    """A number, or None for '-'."""
    return None if text == "-" else float(text)


def read_runs(path):
    """runs.tsv -> {case: {target: [run dict]}} keeping first-seen order."""
    runs = {}
    with open(path, encoding="utf-8") as tsv:
        for seq, line in enumerate(tsv):
            if not line.strip():
                continue
            case, target, rnd, rate, p99, cpu, other, errors = line.rstrip("\n").split("\t")
            runs.setdefault(case, {}).setdefault(target, []).append(
                {"round": int(rnd), "rate": float(rate), "p99": num(p99), "cpu": num(cpu),
                 "other": num(other), "errors": int(errors), "seq": seq})
    return runs


def med(values):
    """Median of the values that are known, or None."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarize(samples, quiet_pct):
    """Medians of one target in one case."""
    quiet = [s["rate"] for s in samples if s["other"] is not None and s["other"] < quiet_pct]
    return {
        "rate": med(s["rate"] for s in samples),
        "p99": med(s["p99"] for s in samples),
        "cpu": med(s["cpu"] for s in samples),
        # Work per second of the target's own CPU: what a neighbour disturbs least.
        "per_cpu": med(s["rate"] / (s["cpu"] / 100) if s["cpu"] else None for s in samples),
        "other": med(s["other"] for s in samples),
        "errors": sum(s["errors"] for s in samples),
        "n": len(samples),
        "quiet": statistics.median(quiet) if quiet else None,
        "n_quiet": len(quiet),
        "min": min(s["rate"] for s in samples),
        "max": max(s["rate"] for s in samples),
    }


def fmt(value, spec=",.0f"):
    """A number for a table cell, '-' when unknown."""
    return "-" if value is None else format(value, spec)


def ratio(a, b):
    """a / b as 'x0.00', '-' when either is unknown."""
    return "-" if a is None or not b else f"x{a / b:.2f}"


def case_table(case, by_target, quiet_pct):
    """One case: a row per target, medians over every round."""
    out = [f"### {case}", "",
           "| target | rate/s (median) | undisturbed: rate/s (runs) | p99 ms | CPU % "
           "| rate per CPU-s | other CPU % | errors | runs | min-max |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    stats = {}
    for target, samples in by_target.items():
        m = stats[target] = summarize(samples, quiet_pct)
        out.append(
            f"| {target} | {fmt(m['rate'])} | {fmt(m['quiet'])} ({m['n_quiet']}) "
            f"| {fmt(m['p99'], '.2f')} | {fmt(m['cpu'])} | {fmt(m['per_cpu'])} "
            f"| {fmt(m['other'])} | {m['errors']} | {m['n']} | {fmt(m['min'])}-{fmt(m['max'])} |")
    return out + [""], stats


def versus_best_rival(case, stats, rivals):
    """pentaflow against the better rival of the case, by rate and by CPU cost."""
    present = [t for t in rivals if t in stats]
    if "pentaflow" not in stats or not present:
        return []
    best = max(present, key=lambda t: stats[t]["rate"])
    pf, bm = stats["pentaflow"], stats[best]
    return [f"| {case} | {best} | {ratio(pf['rate'], bm['rate'])} "
            f"| {ratio(pf['quiet'], bm['quiet'])} | {ratio(pf['per_cpu'], bm['per_cpu'])} |"]


def goals(suite, tables):
    """The issue's goal lines for a suite, computed from the case medians."""
    out = []
    if suite == "tls":
        rows = [r for case, stats in tables.items()
                for r in versus_best_rival(case, stats, ("haproxy", "nginx"))]
        if rows:
            out += ["## pentaflow / the better of HAProxy and nginx (goal: >= x1.00 on every row)",
                    "", "| case | better rival | rate | rate, undisturbed runs | rate per CPU-s |",
                    "|---|---|---:|---:|---:|", *rows, ""]
        keep = tables.get("keepalive-ecdsa", {})
        rivals = [t for t in ("haproxy", "nginx") if t in keep and keep[t]["per_cpu"]]
        if "pentaflow" in keep and keep["pentaflow"]["per_cpu"] and rivals:
            best = max(rivals, key=lambda t: keep[t]["per_cpu"])
            r = keep["pentaflow"]["per_cpu"] / keep[best]["per_cpu"]
            out += [f"- HTTPS keep-alive, pentaflow / {best} per CPU-second: x{r:.2f} (goal >= "
                    f"x{TLS_KEEPALIVE_GOAL:.2f}: {'met' if r >= TLS_KEEPALIVE_GOAL else 'not met'})",
                    ""]
    elif suite == "cdn":
        pf = {case: stats.get("pentaflow") for case, stats in tables.items()}
        ng = {case: stats.get("nginx") for case, stats in tables.items()}
        get = lambda d, c, k: (d.get(c) or {}).get(k)  # noqa: E731
        cached = get(pf, "rewritten-cached", "rate")
        plain = get(pf, "plain", "rate")
        if cached is not None and plain:
            verdict = "met" if cached / plain >= CDN_CACHED_GOAL else "not met"
            out.append(f"- pentaflow cached rewritten / unrewritten: x{cached / plain:.2f} "
                       f"(goal >= x{CDN_CACHED_GOAL:.2f}: {verdict})")
        for key, what in (("rate", "rate"), ("per_cpu", "rate per CPU-s")):
            a = get(pf, "rewritten-uncached", key)
            b = get(ng, "rewritten-uncached", key)
            if a is not None and b:
                out.append(f"- pentaflow uncached rewriting / nginx sub_filter, {what}: "
                           f"x{a / b:.2f} (goal > x1.00: {'met' if a > b else 'not met'})")
            a, b = get(pf, "plain", key), get(ng, "plain", key)
            if a is not None and b:
                out.append(f"- pentaflow / nginx, unrewritten page, {what}: x{a / b:.2f}")
        out += [""] if out else []
    elif suite == "l4":
        pps = tables.get("pps", {})
        if "scheduler" in pps and "kernel" in pps and pps["kernel"]["rate"]:
            r = pps["scheduler"]["rate"] / pps["kernel"]["rate"]
            out.append(f"- scheduler / kernel forwarding, packets/s: x{r:.2f} "
                       f"(goal >= x{L4_GOAL:.2f}: {'met' if r >= L4_GOAL else 'not met'})")
        if "xdp" in pps and "kernel" in pps and pps["kernel"]["rate"]:
            out.append(f"- XDP scheduler / kernel forwarding, packets/s: "
                       f"x{pps['xdp']['rate'] / pps['kernel']['rate']:.2f}")
            if "scheduler" in pps and pps["scheduler"]["rate"]:
                out.append(f"- XDP scheduler / AF_PACKET scheduler, packets/s: "
                           f"x{pps['xdp']['rate'] / pps['scheduler']['rate']:.2f}")
        http = tables.get("http", {})
        if "array-3" in http and "node-1" in http and http["node-1"]["rate"]:
            out.append(f"- array of 3 / one node alone, requests/s: "
                       f"x{http['array-3']['rate'] / http['node-1']['rate']:.2f}")
        out += [""] if out else []
    return out


def criterion_section(path):
    """The rewrite crate's criterion bench, one row per benchmark id."""
    with open(path, encoding="utf-8", errors="replace") as f:
        rows = parse_criterion(f.read())
    if not rows:
        return ["Rewrite throughput (criterion): no result (see raw/criterion.txt).", ""]
    out = ["## Rewrite throughput, one core (criterion, median estimate)", "",
           "| benchmark | MB/s |", "|---|---:|"]
    out += [f"| {name} | {mbs:,.1f} |" for name, mbs in rows.items()]
    return out + [""]


def every_run(runs):
    """All rows, for the record."""
    out = ["<details><summary>every run</summary>", "",
           "| round | case | target | rate/s | p99 ms | CPU % | other CPU % | errors |",
           "|---:|---|---|---:|---:|---:|---:|---:|"]
    rows = sorted((s["round"], s["seq"], case, target, s) for case, by in runs.items()
                  for target, samples in by.items() for s in samples)
    for rnd, _, case, target, s in rows:
        out.append(f"| {rnd} | {case} | {target} | {fmt(s['rate'])} | {fmt(s['p99'], '.2f')} "
                   f"| {fmt(s['cpu'])} | {fmt(s['other'])} | {s['errors']} |")
    return out + ["", "</details>", ""]


def summary(args):
    """The Markdown report of one suite."""
    with open(args.header, encoding="utf-8") as header:
        out = [header.read().rstrip("\n"), ""]
    runs = read_runs(args.runs)
    out += ["## Medians per case", "",
            f"CPU %: the target's own user+system time, % of one core. other CPU %: every "
            f"other process meanwhile; a run is undisturbed below {args.quiet_pct} %. "
            "errors: wrk socket errors + non-2xx, or s_time connections not resumed.", ""]
    tables = {}
    for case, by_target in runs.items():
        lines, tables[case] = case_table(case, by_target, args.quiet_pct)
        out += lines
    out += goals(args.suite, tables)
    if args.criterion:
        out += criterion_section(args.criterion)
    if args.mem:
        out += report.memory_section(report.read_mem(args.mem), ["pentaflow", "haproxy", "nginx"],
                                     goal_kib=TLS_IDLE_GOAL_KIB,
                                     title="Memory per idle TLS client connection")
    out += every_run(runs)
    print("\n".join(out))


def main(argv):
    """Subcommands: wrk, stime, criterion, l4pps (parsers), summary (report)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("wrk", help="print 'rps p99_ms errors'").add_argument("file")
    st = sub.add_parser("stime", help="print 'conns_per_s - not_resumed'")
    st.add_argument("file")
    st.add_argument("--wall", type=float, required=True, help="seconds the clients ran")
    sub.add_parser("criterion", help="print 'id MB/s' lines").add_argument("file")
    l4 = sub.add_parser("l4pps", help="print 'kernel_pps scheduler_pps frames_per_cpu_s "
                        "kernel_lost scheduler_lost xdp_pps xdp_lost xdp_ns_per_packet "
                        "kernel_per_busy_cpu_s scheduler_per_busy_cpu_s xdp_per_busy_cpu_s'")
    l4.add_argument("file")
    l4.add_argument("--secs", type=float, default=3.0, help="seconds per mode of the run")
    summ = sub.add_parser("summary", help="print the Markdown report")
    summ.add_argument("--suite", choices=("tls", "cdn", "l4"), required=True)
    summ.add_argument("--runs", required=True)
    summ.add_argument("--header", required=True)
    summ.add_argument("--quiet-pct", type=int, default=DEFAULT_QUIET_PCT)
    summ.add_argument("--criterion", help="cargo bench output (cdn suite)")
    summ.add_argument("--mem", help="mem.tsv of idle_conns.py --tls results (tls suite)")
    args = parser.parse_args(argv)
    if args.cmd == "summary":
        summary(args)
        return 0
    with open(args.file, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if args.cmd == "wrk":
        rps, _, p99, errors, _ = report.parse_wrk(text)
        print(f"{rps:.2f} {p99:.4f} {errors}")
    elif args.cmd == "stime":
        rate, not_resumed = parse_stime(text, args.wall)
        print(f"{rate:.2f} - {not_resumed}")
    elif args.cmd == "criterion":
        for name, mbs in parse_criterion(text).items():
            print(f"{name} {mbs:.1f}")
    else:
        r = parse_l4pps(text)
        rows = [k for k in ("kernel", "scheduler", "xdp") if k in r]
        lost = {k: round(max(0.0, r[k][0] - r[k][1]) * args.secs) for k in rows}
        xdp = r.get("xdp")
        busy = r["per_busy"]
        print(f"{r['kernel'][1]:.0f} {r['scheduler'][1]:.0f} {fmt(r['frames_per_cpu_s'], '.0f')} "
              f"{lost['kernel']} {lost['scheduler']} "
              f"{fmt(xdp[1] if xdp else None, '.0f')} {lost.get('xdp', '-')} "
              f"{fmt(r['xdp_ns'], '.0f')} {fmt(busy.get('kernel'), '.0f')} "
              f"{fmt(busy.get('scheduler'), '.0f')} {fmt(busy.get('xdp'), '.0f')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
