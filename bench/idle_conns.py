#!/usr/bin/env python3
"""Resident memory per idle client connection of a proxy.

Owns: opening N keep-alive client connections to one loopback address, holding
them idle, and reading the proxy's VmRSS / RssAnon from /proc before and after.
Must not: send any traffic off loopback, run unbounded (everything is under one
deadline), or leave a socket open when it returns.

Modes:
  request  each connection sends one `GET` and reads the whole response, then
           stays idle in keep-alive (the default: the proxy has gone through
           its full request path once, as a real idle browser connection has).
  connect  each connection is only established, nothing is sent.

With --tls every connection first completes a TLS handshake (certificate not
verified: the bench's own self-signed one), so the proxy's idle TLS state is
counted too.

Prints one JSON object on stdout; progress and warnings go to stderr.
"""

import argparse
import asyncio
import ipaddress
import json
import resource
import ssl
import sys
import time

# Connections opened at the same time: well under the listen backlogs of the
# proxies (4096 here) so no SYN is dropped and no connect waits on a retry.
DEFAULT_CONCURRENCY = 200
# Per-connection budget for connect + one request; a loopback answer takes
# microseconds, so anything near this is a failure, not a slow peer.
PER_CONN_TIMEOUT_S = 10.0
# The largest response head we accept while looking for Content-Length.
MAX_HEAD_BYTES = 64 * 1024


def read_status(pids):
    """Sum VmRSS and RssAnon (KiB) over the given PIDs."""
    total = {"VmRSS": 0, "RssAnon": 0}
    for pid in pids:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in total:
                    total[key] += int(value.split()[0])
    return total


def client_tls():
    """A TLS client context for the bench's self-signed certificates."""
    # Not verified, so no CA store is loaded.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # HTTP/1.1 only: the idle state measured is the HTTP/1 connection's.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def open_one(host, port, path, mode, tls=None):
    """Open one connection (and, in request mode, complete one request)."""
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    if mode == "request":
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "User-Agent: pentaflow-bench-idle\r\n\r\n".encode("ascii")
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD_BYTES:
            raise ValueError("response head too large")
        status_line, *headers = head.decode("latin-1").split("\r\n")
        if not status_line.startswith("HTTP/1.1 200"):
            raise ValueError(f"unexpected status: {status_line!r}")
        length = None
        for header in headers:
            name, _, value = header.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise ValueError("response without Content-Length")
        await reader.readexactly(length)
    return reader, writer


async def open_all(args):
    """Open args.conns connections, at most args.concurrency at a time."""
    gate = asyncio.Semaphore(args.concurrency)
    # One context for every connection: building one loads the system's CA store.
    tls = client_tls() if args.tls else None
    conns = []
    failures = []

    async def guarded():
        async with gate:
            try:
                conns.append(
                    await asyncio.wait_for(
                        open_one(args.host, args.port, args.path, args.mode, tls),
                        PER_CONN_TIMEOUT_S,
                    )
                )
            except (OSError, ValueError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
                failures.append(repr(err))

    await asyncio.gather(*(guarded() for _ in range(args.conns)))
    return conns, failures


async def measure(args):
    """Baseline, open, settle, read again, count survivors, close."""
    before = read_status(args.pid)
    started = time.monotonic()
    conns, failures = await open_all(args)
    opened_in = time.monotonic() - started
    # Let the proxy finish whatever it does after a response (buffer release,
    # pool bookkeeping) so we read the steady idle state.
    await asyncio.sleep(args.settle)
    after = read_status(args.pid)
    # A proxy that closed connections during the hold must not look lean:
    # count how many are still open (a closed one has reached EOF).
    await asyncio.sleep(0)
    still_open = sum(1 for reader, _ in conns if not reader.at_eof())
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    held = max(still_open, 1)
    if still_open < len(conns):
        print(f"idle_conns: {len(conns) - still_open} of {len(conns)} connections were closed "
              f"by the server during the measurement (opening took {opened_in:.0f}s)",
              file=sys.stderr)
    return {
        "mode": args.mode + ("+tls" if args.tls else ""),
        "requested": args.conns,
        "opened": len(conns),
        "still_open": still_open,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "open_seconds": round(opened_in, 2),
        "before_kib": before,
        "after_kib": after,
        "vmrss_kib_per_conn": round((after["VmRSS"] - before["VmRSS"]) / held, 2),
        "rssanon_kib_per_conn": round((after["RssAnon"] - before["RssAnon"]) / held, 2),
    }


def parse_args(argv):
    """Command line: target, PIDs to watch, and the bounds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--pid", type=int, action="append", required=True,
                        help="process whose memory is summed (repeatable)")
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--mode", choices=("request", "connect"), default="request")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (not verified)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to hold the connections idle before reading")
    parser.add_argument("--deadline", type=float, default=120.0,
                        help="hard bound on the whole measurement, seconds")
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(args.host).is_loopback:
        parser.error("--host must be a loopback address")
    return args


def main(argv):
    """Raise the descriptor limit, run under the deadline, print JSON."""
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.conns + 64
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    if min(needed, hard) < needed:
        print(f"idle_conns: open-file limit {hard} < {needed}; "
              "some connections will fail", file=sys.stderr)
    try:
        result = asyncio.run(asyncio.wait_for(measure(args), args.deadline))
    except asyncio.TimeoutError:
        # Any socket still open is closed when this process exits just below.
        print(json.dumps({"error": f"deadline of {args.deadline}s exceeded"}))
        return 1
    print(json.dumps(result))
    return 0 if result["failures"] == 0 else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
