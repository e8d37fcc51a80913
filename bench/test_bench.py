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
import ssl
import subprocess
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
        rps, p50, p99, errors, done = report.parse_wrk(WRK_OUTPUT)
        self.assertEqual(rps, 48600.12)
        self.assertEqual(done, 486000)
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
        lines = report.throughput_section(report.read_runs(runs)["base"], ["pentaflow", "haproxy", "nginx"])
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
            report.read_runs(runs)["base"], ["pentaflow", "haproxy"], {2}, 25))
        self.assertIn("the 1 clean rounds of 2", text)
        self.assertIn("req/s x1.50, p99 x1.00", text)
        # The disturbed round is still listed for the record.
        self.assertIn("| 1 | haproxy | 900 |", text)

    def test_no_clean_round_is_said_plainly(self):
        runs = self.write("haproxy 1 150 1.0 2.0 0 99 180\n")
        text = "\n".join(report.throughput_section(report.read_runs(runs)["base"], ["haproxy"]))
        self.assertIn("No round was clean", text)

    def test_scenarios_cpu_split_scaling_and_logging(self):
        # scenario target round rps p50 p99 errors cpu% other% user sys requests
        runs = self.write(
            "base pentaflow 1 600 1.0 2.0 0 100 1 30 70 6000\n"
            "base nginx 1 500 1.0 2.0 0 100 1 20 80 5000\n"
            "base haproxy 1 400 1.0 4.0 0 50 1 10 40 4000\n"
            "w2 pentaflow 1 1000 1.0 2.0 0 200 1 60 140 10000\n"
            "w2 nginx 1 900 1.0 2.0 0 150 1 40 110 9000\n"
            "log pentaflow 1 500 1.0 2.0 0 100 1 40 60 5000\n"
            "log nginx 1 450 1.0 2.0 0 100 1 25 75 4500\n")
        clean = self.write("base 1\nw2 1\nlog 1\n")
        parsed = report.read_runs(runs)
        self.assertEqual(sorted(parsed), ["base", "log", "w2"])
        base = "\n".join(report.throughput_section(
            parsed["base"], ["pentaflow", "haproxy", "nginx"], {1}, 25, scenario="base", hz=100))
        # 30 user ticks at 100 Hz over 6000 requests: 50 µs each.
        self.assertIn("| pentaflow | 50.00 | 116.67 | 166.67 |", base)
        # Per CPU-second haproxy (800) beats nginx (500); pentaflow does 600.
        self.assertIn("pentaflow / haproxy (the better rival per CPU-second): "
                      "req per proxy CPU-s x0.75 (goal: >= x1.20: not met)", base)
        order = ["pentaflow", "haproxy", "nginx", "direct"]
        cleans = report.read_clean(clean)
        overview = "\n".join(report.overview_section(
            parsed, cleans, 25, order, {"base": ("600 B", "")}, 100))
        self.assertIn("| base | 600 B | 600 | x1.20 (nginx) | x1.00 | 600 | x0.75 (haproxy) "
                      "| 50.00 / 116.67 |", overview)
        scaling = "\n".join(report.scaling_section(parsed, cleans, 25, order))
        self.assertIn("| pentaflow | 600 | 1,000 | x1.67 | 600 | 500 |", scaling)
        logging = "\n".join(report.logging_section(parsed, cleans, 25, order))
        self.assertIn("| pentaflow | 600 | 500 | +20% |", logging)

    def test_old_runs_files_read_as_base(self):
        runs = self.write("pentaflow 1 100 1.0 4.0 0 99 1\n")
        clean = self.write("1\n")
        self.assertEqual(list(report.read_runs(runs)), ["base"])
        self.assertEqual(report.read_clean(clean), {"base": {1}})

    def test_syscalls_per_request_table(self):
        path = self.write("base pentaflow read 300 100 10 20\n"
                          "base pentaflow writev 200 100 10 20\n"
                          "base pentaflow context-switches 50 100 10 20\n"
                          "base nginx read 100 50 5 5\n"
                          "base nginx getpid 1 50 5 5\n")
        text = "\n".join(report.syscalls_section(report.read_syscalls(path),
                                                  ["pentaflow", "nginx"], hz=100))
        self.assertIn("| read | 3.00 | 2.00 |", text)
        self.assertIn("| writev | 2.00 | 0.00 |", text)
        self.assertNotIn("getpid", text, "below 0.05 per request in every proxy")
        self.assertIn("| **all system calls** | **5.00** | **2.02** |", text)
        self.assertIn("| context switches | 0.50 | 0.00 |", text)
        self.assertIn("| user / system µs | 1000.00 / 2000.00 | 1000.00 / 1000.00 |", text)

    def test_pending_pentaflow_row(self):
        runs = self.write("haproxy 1 150 1.0 2.0 0 99 1\n")
        text = "\n".join(report.throughput_section(report.read_runs(runs)["base"], ["pentaflow", "haproxy"]))
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


L4PPS_XDP = """path                                   sent pps      fwd pps        fwd     loss busy CPU-s fwd/busy CPU-s
kernel IP forwarding (node1)             233131       233131     699392     0.0%       6.64         105330
pentaflow scheduler (AF_PACKET)          154965       154965     464896     0.0%       6.79          68468
pentaflow scheduler (XDP generic)        189440       189430     568290     0.0%       6.62          85849
XDP program (xdp_generic - data_plane = "xdp": veth): 568320 runs, 86 ns per packet in the program; forwarded 568320, dropped 0
scheduler thread: 0.79 CPU-s for 464896 frames = 588476 frames per CPU-second (send path)
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

    def test_l4pps_rows_with_xdp_and_busy_cpu(self):
        r = suites.parse_l4pps(L4PPS_XDP)
        self.assertEqual(r["kernel"], (233131.0, 233131.0))
        self.assertEqual(r["scheduler"], (154965.0, 154965.0))
        self.assertEqual(r["xdp"], (189440.0, 189430.0))
        self.assertEqual(r["per_busy"], {"kernel": 105330.0, "scheduler": 68468.0,
                                         "xdp": 85849.0})
        self.assertEqual(r["xdp_ns"], 86.0)
        self.assertEqual(r["frames_per_cpu_s"], 588476.0)

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

    def test_tls_mode_against_a_local_tls_server(self):
        body = b"y" * 100
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
            # openssl is part of Debian's base system (and of the bench's install list).
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                            "/CN=idle.test", "-keyout", key, "-out", cert],
                           check=True, capture_output=True)
            server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_tls.load_cert_chain(cert, key)

            async def scenario():
                async def answer(reader, writer):
                    while True:
                        try:
                            await reader.readuntil(b"\r\n\r\n")
                        except (asyncio.IncompleteReadError, ConnectionError):
                            break
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body)
                        await writer.drain()
                    writer.close()

                server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
                port = server.sockets[0].getsockname()[1]
                args = idle_conns.parse_args(
                    ["--tls", "--port", str(port), "--pid", str(os.getpid()), "--conns", "20",
                     "--settle", "0.1"])
                result = await idle_conns.measure(args)
                server.close()
                await server.wait_closed()
                return result

            result = asyncio.run(scenario())
        self.assertEqual(result["mode"], "request+tls")
        self.assertEqual(result["still_open"], 20)
        self.assertEqual(result["failures"], 0)

    def test_refuses_a_non_loopback_target(self):
        with self.assertRaises(SystemExit):
            idle_conns.parse_args(["--host", "192.0.2.1", "--port", "80", "--pid", "1"])



import socket  # noqa: E402  (the failover tests' imports, kept beside them)
import threading  # noqa: E402
import time  # noqa: E402

import failover_probe  # noqa: E402

LAB_STATUS = """lab pf0e22 (VIP 10.77.1.10)
  host      role    address      up   procs  scheduler
  node1     Node    10.77.1.11   yes  1      yes
  node2     Node    10.77.1.12   yes  1
  client1   Client  10.77.2.11   yes  0
  node1     standby    scheduler 2 table v4 config v0
  node2     scheduler  scheduler 2 table v4 config v0
  node3     down
  web1      pid 31027   web server  log /run/pentaflow-lab/pf0e22/web1.log
  node1     pid 31156   pentaflow serve  log /run/pentaflow-lab/pf0e22/node1.log
  node2     pid 31157   pentaflow serve  log /run/pentaflow-lab/pf0e22/node2.log
  node1     pid 31200   pentaflow serve  log /run/pentaflow-lab/pf0e22/node1.log
"""

NODE2_LOG = """2026-11-23T17:47:14.580873Z  INFO pentaflow::cli::cluster: node joined node=3
2026-11-23T17:47:16.715289Z  WARN pentaflow::cli::cluster: node failed node=3
2026-11-23T17:47:16.725289Z  WARN pentaflow::cli::cluster: node failed node=1
2026-11-23T17:47:16.730333Z  INFO pentaflow::cli::cluster: elected scheduler: taking the VIP node=2 table_version=1
2026-11-23T17:47:16.760664Z  INFO pentaflow_packet::run: scheduler up lan=eth0 vip=10.77.1.10 mac=02:77:01:00:00:02
2026-11-23T17:47:16.761300Z  INFO pentaflow::cli::cluster: scheduler up (gratuitous ARP sent) node=2 assigned=1
2026-11-23T17:47:16.761316Z  INFO pentaflow::cli::cluster: live-bucket merge done: assigning new buckets
"""
NODE3_LOG = """2026-11-23T17:47:13.000000Z  WARN pentaflow::cli::cluster: node failed node=1
2026-11-23T17:47:16.718038Z  WARN pentaflow::cli::cluster: node failed node=1
"""


class Failover(unittest.TestCase):
    """failover_probe.py: statistics, parsers, the report, the probe and its server."""

    def test_median_and_nearest_rank_percentile(self):
        fp = failover_probe
        self.assertEqual(fp.median([3, 1, 2]), 2)
        self.assertEqual(fp.median([4, 1, 3, 2]), 2.5)
        self.assertIsNone(fp.median([]))
        self.assertEqual(fp.percentile(range(1, 21), 90), 18)
        self.assertEqual(fp.percentile(range(1, 21), 100), 20)
        self.assertEqual(fp.percentile([7], 90), 7)
        self.assertIsNone(fp.percentile([], 90))

    def test_response_and_body_parsing(self):
        fp = failover_probe
        self.assertIsNone(fp.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"))
        self.assertIsNone(fp.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"))
        self.assertEqual(fp.parse_response(b"HTTP/1.1 503 No\r\ncontent-length: 2\r\n\r\nok"),
                         (503, b"ok"))
        with self.assertRaises(fp.Fail):
            fp.parse_response(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody")
        self.assertEqual(fp.check_body(b"web2 /p1/r3\n", "/p1/r3"), "web2")
        with self.assertRaises(fp.Fail):
            fp.check_body(b"web2 /p1/r4\n", "/p1/r3")

    def test_ss_ports(self):
        text = ("0      0        10.77.1.10:80      10.77.2.11:45678\n"
                "0      0        10.77.1.10:80      10.77.2.11:40001 \n\n")
        self.assertEqual(failover_probe.parse_ss_ports(text), {45678, 40001})

    def test_takeover_events_from_the_nodes_logs(self):
        fp = failover_probe
        kill = fp.log_time("2026-11-23T17:47:16.500000Z  x")
        self.assertAlmostEqual(fp.log_time("2026-11-23T17:47:16.715289Z  WARN x") - kill,
                               0.215289, places=5)
        self.assertIsNone(fp.log_time("not a log line"))
        ev = fp.takeover_events({"node2": NODE2_LOG, "node3": NODE3_LOG}, kill, 1)
        # node3's failure (another node) and the line before the kill do not count.
        self.assertAlmostEqual(ev["failed"], 0.218038, places=5)
        self.assertAlmostEqual(ev["elected"], 0.230333, places=5)
        self.assertAlmostEqual(ev["up"], 0.2613, places=4)
        self.assertAlmostEqual(ev["accepting"], 0.261316, places=5)
        self.assertEqual(ev["by"], "node2")
        none = fp.takeover_events({"node2": NODE2_LOG}, kill + 10, 1)
        self.assertEqual(none, {"failed": None, "elected": None, "up": None,
                                "accepting": None, "by": None})

    def test_lab_status(self):
        roles, names, pids = failover_probe.parse_lab_status(LAB_STATUS)
        self.assertEqual(roles, {"node1": "standby", "node2": "scheduler", "node3": "down"})
        self.assertEqual(names, {"node1": "2", "node2": "2"})
        self.assertEqual(pids, {"node1": [31156, 31200], "node2": [31157]})

    def row(self, series, rnd, ms, victim="node1", lost_victim=33, lost_surv=0):
        return {"series": series, "round": rnd, "victim": victim, "new_master": "node2",
                "failover_ms": ms, "last_failed_start_ms": None, "window_s": 3.0,
                "probes_failed_after_ok": 0, "conns": {victim: 33, "node2": 67},
                "lost": {"victim": lost_victim, "survivors": lost_surv, "unattributed": 0,
                         "before_kill": 0},
                "survivor_max_latency_ms": 400.0, "loadavg": 1.5,
                "events_ms": {"failed": 250.0, "elected": 255.0, "up": 290.0,
                              "accepting": 290.0} if series == "pentaflow" else None}

    def test_stats_count_an_unanswered_kill_as_its_window(self):
        rows = [self.row("pentaflow", 1, 300.0), self.row("pentaflow", 2, None),
                self.row("pentaflow", 3, 200.0, lost_surv=2)]
        st = failover_probe.series_stats(rows)
        self.assertEqual((st["median"], st["max"], st["min"]), (300.0, 3000.0, 200.0))
        self.assertEqual(st["unanswered"], 1)
        self.assertEqual(st["lost_survivors"], 2)
        self.assertEqual(st["conns_on_victim_median"], 33)

    def test_report_table_ratio_breakdown_and_spurious_takeovers(self):
        fp = failover_probe
        rows = [self.row("pentaflow", 1, 300.0), self.row("pentaflow", 2, 340.0),
                self.row("keepalived-1", 1, 3000.0, lost_victim=100),
                self.row("keepalived-1", 2, 3100.0, lost_victim=100),
                {"series": "keepalived-1", "round": 3, "victim": "node2", "loadavg": 4.0,
                 "aborted": "load failed before the kill: [[1, 2.0, 'ECONNRESET']]"}]
        settings = fp.read_settings(
            "date\t2026-11-23 18:00 UTC\nline\tmachine\t2 cores\n"
            "label\tpentaflow\tpentaflow (heartbeat 100ms)\nlogs\tpentaflow\tnode\n"
            "label\tkeepalived-1\tkeepalived, advert_int 1 s\n"
            "logs\tkeepalived-1\tk1-keepalived-node\n")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "node1.log"), "w") as f:
                f.write("x elected scheduler: taking the VIP\n" * 2)
            with open(os.path.join(d, "node2.log"), "w") as f:
                f.write("x elected scheduler: taking the VIP\n")
            with open(os.path.join(d, "k1-keepalived-node1.log"), "w") as f:
                f.write("(k1) Entering MASTER STATE\n" * 4)
            settings["spurious"] = fp.spurious_takeovers(settings, rows, d)
        self.assertEqual(settings["spurious"], {"pentaflow": 0, "keepalived-1": 1})
        text = fp.render_report(rows, settings)
        self.assertIn("# Failover: pentaflow against keepalived/VRRP, 2026-11-23 18:00 UTC", text)
        self.assertIn("- machine: 2 cores", text)
        self.assertIn("| pentaflow (heartbeat 100ms) | 2 | **320** | 340 | 340 | 300 | 0 | **0** "
                      "| 33 | 33 of 100 | 0 | 0 |", text)
        self.assertIn("| keepalived, advert_int 1 s | 2 | **3050** |", text)
        self.assertIn("| 0 | 1 | 1 |\n", text)  # flaps, spurious takeovers, aborted rounds
        self.assertIn("- keepalived-1 round 3 (node2 the master/scheduler): load failed", text)
        self.assertIn("keepalived, advert_int 1 s / pentaflow: **9.53×**", text)
        self.assertIn("| first survivor logs `node failed` (detection) | 250 | 250 | 250 | 250 "
                      "| 2 |", text)
        self.assertIn("election + data-plane set-up) | 40 | 40 | 40 | 40 | 2 |", text)
        self.assertIn("in that order) | 35 | 35 | 35 | 35 | 2 |", text)

    def test_server_and_keepalive_requests(self):
        fp = failover_probe
        srv = fp.Server(("127.0.0.1", 0), fp.Handler)
        srv.name = "node7"
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            sock = socket.create_connection(srv.server_address[:2], timeout=5)
            rfile = sock.makefile("rb")
            self.assertEqual(fp.request(sock, rfile, "/p1/r0"), "node7")
            self.assertEqual(fp.request(sock, rfile, "/p1/r1"), "node7")
            rfile.close()
            sock.close()
        finally:
            srv.shutdown()
            srv.server_close()

    def test_probe_measures_until_the_server_answers(self):
        fp = failover_probe
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            addr = s.getsockname()
        srv = []

        def late_start():
            time.sleep(0.2)
            server = fp.Server(addr, fp.Handler)
            server.name = "late"
            srv.append(server)
            server.serve_forever()

        threading.Thread(target=late_start, daemon=True).start()
        t0 = time.monotonic()
        try:
            res = fp.probe_until(addr, t0, window=3.0, connect_timeout=0.05,
                                 answer_timeout=0.5, gap=0.01, confirm=0.1)
        finally:
            for server in srv:
                server.shutdown()
                server.server_close()
        self.assertEqual(res["by"], "late")
        self.assertGreaterEqual(res["first_ok"], 0.2)
        self.assertLess(res["first_ok"], 1.0)
        self.assertGreater(res["failed"], 5, "refused probes before the server listened")
        self.assertLess(res["last_failed_start"], res["first_ok"])
        self.assertEqual(res["failed_after_ok"], 0)

    def test_round_refuses_a_pid_that_is_not_what_it_was_told(self):
        with self.assertRaises(SystemExit):
            failover_probe.main(["round", "--vip", "127.0.0.1", "--series", "x", "--victim",
                                 "node1", "--attribute", "body",
                                 "--kill", "%d:not-this-process" % os.getpid()])


if __name__ == "__main__":
    unittest.main()
