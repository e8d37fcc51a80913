#!/usr/bin/env python3
"""Unit tests of the benchmark harness's Python parts (no proxy needed).

Owns: checking the wrk parser, the report's medians and ratios, the parsers
and reports of the TLS / CDN / L4 suites (suites.py), and idle_conns.py
against a tiny in-process HTTP server on loopback.
Run: python3 -m unittest bench/test_bench.py (from the repository root).
"""

import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import idle_conns  # noqa: E402
import report  # noqa: E402
import suites  # noqa: E402

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:1234/bench.html
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  311.00us   9.20ms   91.00%
    Req/Sec    48.91k     1.20k   51.00k    70.00%
  Latency Distribution
     50%  980.00us
     75%    1.10ms
     90%    1.30ms
     99%    2.50ms
  486000 requests in 10.00s, 380.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  48600.12
Transfer/sec:     38.00MB
"""


class WrkParsing(unittest.TestCase):
    """report.parse_wrk reads the numbers the report is built from."""

    def test_reads_rate_percentiles_and_errors(self):
        rps, p50, p99, errors = report.parse_wrk(WRK_OUTPUT)
        self.assertEqual(rps, 48600.12)
        self.assertAlmostEqual(p50, 0.98)
        self.assertAlmostEqual(p99, 2.5)
        self.assertEqual(errors, 7)

    def test_units(self):
        self.assertAlmostEqual(report.latency_ms("250.00us"), 0.25)
        self.assertAlmostEqual(report.latency_ms("1.50s"), 1500.0)
        self.assertAlmostEqual(report.latency_ms("2.00m"), 120_000.0)
        with self.assertRaises(ValueError):
            report.latency_ms("3 ms")

    def test_truncated_output_is_an_error(self):
        with self.assertRaises(ValueError):
            report.parse_wrk(WRK_OUTPUT.split("Latency Distribution")[0])


class Summary(unittest.TestCase):
    """The report takes medians per target and compares with the better rival."""

    def write(self, text):
        handle = tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False)
        self.addCleanup(os.unlink, handle.name)
        handle.write(text)
        handle.close()
        return handle.name

    def test_medians_and_ratio_against_better_rival(self):
        runs = self.write(
            "pentaflow 1 100 1.0 4.0 0 99 1\n"
            "pentaflow 2 300 1.0 2.0 0 99 1\n"
            "pentaflow 3 200 1.0 3.0 0 99 1\n"
            "haproxy 1 150 1.0 2.0 0 99 1\n"
            "nginx 1 250 1.0 2.0 0 99 1\n")
        lines = report.throughput_section(report.read_runs(runs), ["pentaflow", "haproxy", "nginx"])
        text = "\n".join(lines)
        self.assertIn("| pentaflow | 200 | 1.000 | 3.000 |", text)
        self.assertIn("pentaflow / nginx", text)
        self.assertIn("req/s x0.80, p99 x1.50", text)
        self.assertIn("not met", text)

    def test_only_clean_rounds_count_when_there_are_some(self):
        runs = self.write(
            "pentaflow 1 100 1.0 9.0 0 99 150\n"
            "haproxy 1 900 1.0 9.0 0 99 150\n"
            "pentaflow 2 300 1.0 2.0 0 99 0\n"
            "haproxy 2 200 1.0 2.0 0 99 3\n")
        text = "\n".join(report.throughput_section(
            report.read_runs(runs), ["pentaflow", "haproxy"], {2}, 25))
        self.assertIn("the 1 clean rounds of 2", text)
        self.assertIn("req/s x1.50, p99 x1.00", text)
        # The disturbed round is still listed for the record.
        self.assertIn("| 1 | haproxy | 900 |", text)

    def test_no_clean_round_is_said_plainly(self):
        runs = self.write("haproxy 1 150 1.0 2.0 0 99 180\n")
        text = "\n".join(report.throughput_section(report.read_runs(runs), ["haproxy"]))
        self.assertIn("No round was clean", text)

    def test_pending_pentaflow_row(self):
        runs = self.write("haproxy 1 150 1.0 2.0 0 99 1\n")
        text = "\n".join(report.throughput_section(report.read_runs(runs), ["pentaflow", "haproxy"]))
        self.assertIn("pentaflow: pending", text)


STIME_REUSE = """Collecting connection statistics for 5 seconds
Now timing with session id reuse.
starting
rrrrrrrrrr*rrrrrrrrr

518 connections in 0.40s; 1295.00 connections/user sec, bytes read 2253300
518 connections in 5 real seconds, 4350 bytes read per connection
"""

STIME_NEW = """Collecting connection statistics for 5 seconds
**********

300 connections in 0.90s; 333.33 connections/user sec, bytes read 0
300 connections in 6 real seconds, 0 bytes read per connection
"""

CRITERION = """rewrite_100k/identity   time:   [1.2000 ms 1.2500 ms 1.3000 ms]
                        thrpt:  [75.000 MiB/s 78.125 MiB/s 81.000 MiB/s]
                 change:
                        time:   [-1.0000% +0.5000% +2.0000%] (p = 0.50 > 0.05)
                        thrpt:  [-2.0000% -0.5000% +1.0000%]
rewrite_100k/cache_hit_and_long_name
                        time:   [10.000 us 10.100 us 10.200 us]
                        thrpt:  [9.5000 GiB/s 9.6000 GiB/s 9.7000 GiB/s]
"""

L4PPS = """path                                   sent pps      fwd pps        fwd     loss
kernel IP forwarding (node1)              38912        38912      38912     0.0%
pentaflow scheduler (AF_PACKET)           30720        25331      25331    17.5%
scheduler thread: 0.12 CPU-s for 25331 frames = 211092 frames per CPU-second (send path)
scheduler counters: forwarded [(NodeId(2), 12672)], local 0, dropped 0, send errors 0
"""


class SuiteParsers(unittest.TestCase):
    """suites.py reads s_time, criterion and l4_pps outputs."""

    def test_stime_rate_is_over_the_measured_wall_time(self):
        rate, not_resumed = suites.parse_stime(STIME_REUSE + STIME_NEW, wall=10.0)
        self.assertAlmostEqual(rate, (518 + 300) / 10.0)
        # Only the reuse run counts '*' as not resumed.
        self.assertEqual(not_resumed, 11)
        self.assertEqual(suites.parse_stime(STIME_NEW, wall=5.0), (60.0, 0))

    def test_stime_incomplete_or_bad_wall(self):
        with self.assertRaises(ValueError):
            suites.parse_stime("starting\nrrr\n", wall=5.0)
        with self.assertRaises(ValueError):
            suites.parse_stime(STIME_NEW, wall=0.0)

    def test_criterion_median_throughput_in_mb_per_s(self):
        rows = suites.parse_criterion(CRITERION)
        self.assertEqual(set(rows), {"rewrite_100k/identity",
                                     "rewrite_100k/cache_hit_and_long_name"})
        self.assertAlmostEqual(rows["rewrite_100k/identity"], 78.125 * 1.048576)
        self.assertAlmostEqual(rows["rewrite_100k/cache_hit_and_long_name"],
                               9.6 * 1024**3 / 1e6)

    def test_l4pps_rows(self):
        r = suites.parse_l4pps(L4PPS)
        self.assertEqual(r["kernel"], (38912.0, 38912.0))
        self.assertEqual(r["scheduler"], (30720.0, 25331.0))
        self.assertEqual(r["frames_per_cpu_s"], 211092.0)
        with self.assertRaises(ValueError):
            suites.parse_l4pps(L4PPS.splitlines()[1])


class SuiteReports(unittest.TestCase):
    """suites.py medians, ratios and goal lines."""

    def report(self, suite, rows, criterion=None):
        tsv = tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False)
        self.addCleanup(os.unlink, tsv.name)
        tsv.write("".join("\t".join(map(str, r)) + "\n" for r in rows))
        tsv.close()
        header = tempfile.NamedTemporaryFile("w", suffix=".md", delete=False)
        self.addCleanup(os.unlink, header.name)
        header.write("# header\n")
        header.close()
        argv = ["summary", "--suite", suite, "--runs", tsv.name, "--header", header.name]
        if criterion:
            argv += ["--criterion", criterion]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            suites.main(argv)
        return out.getvalue()

    def test_tls_ratio_against_better_rival_and_per_cpu(self):
        text = self.report("tls", [
            ("full-rsa", "pentaflow", 1, 900, 5.0, 90, 1, 0),
            ("full-rsa", "pentaflow", 2, 1100, 5.0, 100, 50, 0),
            ("full-rsa", "haproxy", 1, 800, 5.0, 100, 1, 0),
            ("full-rsa", "nginx", 1, 1000, 5.0, 100, 1, 0),
            ("resumed-ecdsa", "pentaflow", 1, 500, "-", 50, 1, 3),
            ("resumed-ecdsa", "nginx", 1, 400, "-", 50, 1, 0),
        ])
        # pentaflow median 1000 vs nginx 1000; undisturbed only: 900 vs 1000.
        self.assertIn("| full-rsa | nginx | x1.00 | x0.90 |", text)
        self.assertIn("| resumed-ecdsa | nginx | x1.25 |", text)
        self.assertIn("| pentaflow | 500 | 500 (1) | - | 50 | 1,000 | 1 | 3 |", text)

    def test_cdn_goals(self):
        text = self.report("cdn", [
            ("plain", "pentaflow", 1, 1000, 1.0, 100, 0, 0),
            ("plain", "nginx", 1, 2000, 1.0, 100, 0, 0),
            ("rewritten-uncached", "pentaflow", 1, 600, 1.0, 100, 0, 0),
            ("rewritten-uncached", "nginx", 1, 500, 1.0, 100, 0, 0),
            ("rewritten-cached", "pentaflow", 1, 950, 1.0, 100, 0, 0),
        ])
        self.assertIn("cached rewritten / unrewritten: x0.95 (goal >= x0.90: met)", text)
        self.assertIn("nginx sub_filter, rate: x1.20 (goal > x1.00: met)", text)
        self.assertIn("unrewritten page, rate: x0.50", text)

    def test_cdn_criterion_section(self):
        crit = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        self.addCleanup(os.unlink, crit.name)
        crit.write(CRITERION)
        crit.close()
        text = self.report("cdn", [("plain", "nginx", 1, 1, 1.0, 1, 0, 0)], crit.name)
        self.assertIn("| rewrite_100k/identity | 81.9 |", text)

    def test_l4_goals(self):
        text = self.report("l4", [
            ("pps", "kernel", 1, 40000, "-", "-", 3, 0),
            ("pps", "scheduler", 1, 24000, "-", 12, 3, 100),
            ("http", "array-3", 1, 6000, 20.0, 60, 5, 0),
            ("http", "node-1", 1, 8000, 20.0, 50, 5, 0),
        ])
        self.assertIn("packets/s: x0.60 (goal >= x0.50: met)", text)
        self.assertIn("one node alone, requests/s: x0.75", text)
        self.assertIn("| scheduler | 24,000 | 24,000 (1) | - | 12 | 200,000 |", text)


class IdleConnections(unittest.TestCase):
    """idle_conns.py opens, holds and closes real loopback connections."""

    def test_request_mode_against_a_local_server(self):
        body = b"x" * 600

        async def scenario():
            async def answer(reader, writer):
                # Serve keep-alive requests until the client goes away.
                while True:
                    try:
                        await reader.readuntil(b"\r\n\r\n")
                    except (asyncio.IncompleteReadError, ConnectionError):
                        break
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n" + body)
                    await writer.drain()
                writer.close()

            server = await asyncio.start_server(answer, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            args = idle_conns.parse_args(
                ["--port", str(port), "--pid", str(os.getpid()), "--conns", "50",
                 "--settle", "0.1"])
            result = await idle_conns.measure(args)
            server.close()
            await server.wait_closed()
            return result

        result = asyncio.run(scenario())
        self.assertEqual(result["opened"], 50)
        self.assertEqual(result["still_open"], 50)
        self.assertEqual(result["failures"], 0)
        self.assertGreater(result["after_kib"]["VmRSS"], 0)
        json.dumps(result)

    def test_refuses_a_non_loopback_target(self):
        with self.assertRaises(SystemExit):
            idle_conns.parse_args(["--host", "192.0.2.1", "--port", "80", "--pid", "1"])


if __name__ == "__main__":
    unittest.main()
