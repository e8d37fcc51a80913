#!/usr/bin/env python3
"""Unit tests of the benchmark harness's Python parts (no proxy needed).

Owns: checking the wrk parser, the report's medians and ratios, and
idle_conns.py against a tiny in-process HTTP server on loopback.
Run: python3 -m unittest bench/test_bench.py (from the repository root).
"""

import asyncio
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import idle_conns  # noqa: E402
import report  # noqa: E402

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
