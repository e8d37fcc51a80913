#!/usr/bin/env python3
"""bench/failover_probe.py: the measuring half of bench/failover.sh (stdlib only).

Owns: one failover round — a keep-alive client load on the VIP, attributing each
load connection to the node that serves it, the SIGKILL itself (so the clock
starts at the signal), probing the VIP with fresh connections until it answers
again, counting failed requests by node, and reading pentaflow's own log
timestamps of that takeover; the small keep-alive HTTP server of the keepalived
series; reading `pentaflow lab status`; and the markdown report of all rounds.
Must not: signal a PID whose command line does not contain what it was told,
send traffic to anything but the VIP it is given (it runs inside the lab's
client namespace), or run unbounded: every loop and wait has a deadline.

Subcommands (bench/failover.sh calls them; see --help of each):
  serve NAME BIND PORT      keep-alive HTTP server answering "NAME PATH\\n"
  round ...                 one kill under load; prints one JSON line
  load ...                  (internal) the load of `round`, in its own process
  lab-status                reads `pentaflow lab status` on stdin: scheduler, PID
  report RESULTS SETTINGS   the markdown report of a results file (JSON lines)
"""

import argparse
import datetime
import errno
import http.server
import json
import math
import os
import re
import selectors
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

# Exit status of `round` when the load broke before the kill (nothing was killed).
ABORTED = 3
# Linux IP_FREEBIND (linux/in.h): bind to an address the host does not hold yet
# (a VIP that moves here only when this node becomes master).
IP_FREEBIND = 15


# ---------------------------------------------------------------------------
# small pure helpers (unit-tested in bench/test_bench.py)

def median(values):
    """The median (mean of the two middle values for an even count); None if empty."""
    xs = sorted(values)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def percentile(values, pct):
    """Nearest-rank percentile (p90 of 20 values is the 18th smallest); None if empty."""
    xs = sorted(values)
    if not xs:
        return None
    rank = max(1, math.ceil(pct / 100 * len(xs)))
    return xs[rank - 1]


class Fail(Exception):
    """A request that did not get the answer it should have."""


def check_body(body, path):
    """`NAME PATH` as the lab's web servers (and `serve`) answer; returns NAME."""
    parts = body.decode("utf-8", "replace").split()
    if len(parts) < 2 or parts[1] != path:
        raise Fail("wrong answer %r to %s" % (body[:80], path))
    return parts[0]


def parse_response(buf):
    """One HTTP/1.1 response at the start of buf: None while incomplete, else
    (status code, body). Needs Content-Length (every server here sends it)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split()[1])
    except (IndexError, ValueError):
        raise Fail("bad status line %r" % head[0][:80]) from None
    length = None
    for line in head[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise Fail("no Content-Length")
    body = buf[end + 4:]
    if len(body) < length:
        return None
    return status, body[:length]


def parse_ss_ports(text):
    """Client ports of `ss -Htn state established ...` lines (peer is the last column)."""
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        _, sep, port = fields[-1].rpartition(":")
        if sep and port.isdigit():
            ports.add(int(port))
    return ports


_LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\s")
_NODE = re.compile(r"\bnode=(\d+)\b")
# pentaflow's log messages of a takeover (crates/pentaflow/src/cli/cluster.rs).
EVENTS = {
    "failed": "node failed",
    "elected": "elected scheduler",
    "up": "scheduler up (gratuitous ARP sent)",
    "accepting": "live-bucket merge done",
}


def log_time(line):
    """Wall-clock seconds of a tracing log line (`2026-01-02T03:04:05.123456Z ...`)."""
    m = _LOG_TS.match(line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
    return t + (float(m.group(2)) if m.group(2) else 0.0)


def takeover_events(logs, since, victim_id):
    """The takeover after a kill at wall time `since`, from the nodes' logs
    ({node name: log text}): seconds after the kill of the first `node failed`
    naming the victim (any survivor), of `elected scheduler`, and of the elected
    node's `scheduler up` and `live-bucket merge done`; plus who was elected."""
    out = {"failed": None, "elected": None, "up": None, "accepting": None, "by": None}
    firsts = {}  # (node, event) -> time
    for node, text in logs.items():
        for line in text.splitlines():
            t = log_time(line)
            if t is None or t < since:
                continue
            for key, needle in EVENTS.items():
                if needle not in line or (node, key) in firsts:
                    continue
                if key == "failed":
                    m = _NODE.search(line)
                    if not m or int(m.group(1)) != victim_id:
                        continue
                firsts[(node, key)] = t
    failed = [t for (_, k), t in firsts.items() if k == "failed"]
    if failed:
        out["failed"] = min(failed) - since
    elected = sorted((t, n) for (n, k), t in firsts.items() if k == "elected")
    if elected:
        t, by = elected[0]
        out["elected"], out["by"] = t - since, by
        for key in ("up", "accepting"):
            if (by, key) in firsts:
                out[key] = firsts[(by, key)] - since
    return out


def parse_lab_status(text):
    """`pentaflow lab status PREFIX` → ({node: role}, {node: scheduler id it names},
    {host: [pids of "pentaflow serve"]})."""
    roles, names, pids = {}, {}, {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0].startswith("node") and f[1] == "pid" and "pentaflow" in line:
            if f[2].isdigit():
                pids.setdefault(f[0], []).append(int(f[2]))
        elif len(f) >= 4 and f[0].startswith("node") and f[2] == "scheduler":
            roles[f[0]] = f[1]
            names[f[0]] = f[3]
        elif len(f) >= 2 and f[0].startswith("node") and f[1] in ("down", "no", "not"):
            roles[f[0]] = "down" if f[1] == "down" else "unknown"
    return roles, names, pids


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    """Running (a zombie is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------------------
# `serve`: the web server of the keepalived series

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = ("%s %s\n" % (self.server.name, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def server_bind(self):
        # No getfqdn() (HTTPServer's would look the address up); FREEBIND for the VIP.
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def cmd_serve(args):
    srv = Server((args.bind, args.port), Handler)
    srv.name = args.name
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv.serve_forever()


# ---------------------------------------------------------------------------
# `load`: keep-alive connections issuing requests until told to stop

def request(sock, rfile, path):
    """One GET on a keep-alive connection; returns the answering server's name."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: vip\r\n\r\n" % path).encode())
    status = rfile.readline(8193)
    if not status:
        raise Fail("closed")
    if not status.startswith(b"HTTP/1.1 200"):
        raise Fail("status %r" % status[:40])
    length = None
    while True:
        line = rfile.readline(8193)
        if not line:
            raise Fail("closed in the head")
        if line in (b"\r\n", b"\n"):
            break
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise Fail("no Content-Length")
    body = rfile.read(length)
    if len(body) != length:
        raise Fail("short body")
    return check_body(body, path)


def why(exc):
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return str(exc)[:80]


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.port = sock.getsockname()[1]
        self.oks = 0
        self.answerer = None

    def close(self):
        for c in (self.rfile, self.sock):
            try:
                c.close()
            except OSError:
                pass


class LoadState:
    def __init__(self):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ok = 0
        self.ok_at_mark = None
        self.mark = None  # monotonic time of the kill
        self.max_latency_after = 0.0
        self.failures = []  # (port, wall time, monotonic-since-mark or None, why)

    def done(self, latency, t_end):
        with self.lock:
            self.ok += 1
            if self.mark is not None and t_end >= self.mark:
                self.max_latency_after = max(self.max_latency_after, latency)

    def failed(self, port, reason):
        with self.lock:
            self.failures.append((port, time.time(), reason))


def load_worker(conns, state, pace):
    rnd = 0
    while not state.stop.is_set() and conns:
        t0 = time.monotonic()
        for c in list(conns):
            if state.stop.is_set():
                break
            path = "/p%d/r%d" % (c.port, rnd)
            start = time.monotonic()
            try:
                c.answerer = request(c.sock, c.rfile, path)
            except (OSError, Fail, ValueError) as e:
                state.failed(c.port, why(e))
                c.close()
                conns.remove(c)
                continue
            end = time.monotonic()
            c.oks += 1
            state.done(end - start, end)
        rnd += 1
        spare = pace - (time.monotonic() - t0)
        if spare > 0:
            state.stop.wait(spare)


def cmd_load(args):
    """Opens --conns connections, runs them until every one has answered twice
    and --steady seconds passed, prints {"ready"...}; then obeys stdin lines
    `mark` (the kill is now) and `stop`, and prints {"ok"...} at the end."""
    addr = (args.vip, args.port)
    conns = []
    for _ in range(args.conns):
        s = socket.create_connection(addr, timeout=args.request_timeout)
        s.settimeout(args.request_timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(Conn(s))
    everyone = list(conns)
    state = LoadState()
    shares = [everyone[i::args.threads] for i in range(args.threads)]
    workers = [threading.Thread(target=load_worker, args=(list(share), state, args.pace),
                                daemon=True) for share in shares if share]
    started = time.monotonic()
    for w in workers:
        w.start()
    deadline = started + args.steady + 15
    while time.monotonic() < deadline:
        if time.monotonic() - started >= args.steady and all(c.oks >= 2 for c in everyone):
            break
        if state.failures:
            break
        time.sleep(0.02)
    ready = {
        "ready": not state.failures and all(c.oks >= 2 for c in everyone),
        "ports": [c.port for c in everyone],
        "answerers": {str(c.port): c.answerer for c in everyone},
        "ok": state.ok,
        "failures_before": list(state.failures),
    }
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "mark":
            with state.lock:
                state.mark = time.monotonic()
                state.ok_at_mark = state.ok
        elif cmd == "stop":
            break
    state.stop.set()
    for w in workers:
        w.join(args.request_timeout + 2)
    with state.lock:
        print(json.dumps({
            "ok": state.ok,
            "ok_after_mark": state.ok - (state.ok_at_mark or 0),
            "max_latency_after_ms": round(state.max_latency_after * 1000, 1),
            "failures": state.failures,
            "stuck_workers": sum(w.is_alive() for w in workers),
        }), flush=True)
    for c in everyone:
        c.close()


# ---------------------------------------------------------------------------
# `round`: one kill

class Probe:
    def __init__(self, addr, start):
        self.start = start
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.phase = "connect"
        self.buf = b""
        self.deadline = None
        self.err = self.sock.connect_ex(addr)


def probe_until(addr, t0, window, connect_timeout, answer_timeout, gap, confirm):
    """Starts a fresh connection + GET every `gap` s from t0 (monotonic; the kill),
    each given `connect_timeout` s to connect and `answer_timeout` s more to answer,
    until `confirm` s after the first answer or `window` s after t0. Several probes
    may be in flight, so the resolution is `gap` whatever a failed probe waits for."""
    sel = selectors.DefaultSelector()
    res = {"first_ok": None, "first_ok_start": None, "last_failed_start": None,
           "probes": 0, "failed": 0, "failed_after_ok": 0, "by": None}
    next_start = t0
    live = set()

    def finish(p, ok, now, body=b""):
        live.discard(p)
        try:
            sel.unregister(p.sock)
        except (KeyError, ValueError):
            pass
        p.sock.close()
        if ok:
            try:
                name = check_body(body, "/probe")
            except Fail:
                ok = False
        if ok:
            if res["first_ok"] is None or now - t0 < res["first_ok"]:
                res["first_ok"], res["first_ok_start"], res["by"] = now - t0, p.start - t0, name
        else:
            res["failed"] += 1
            if res["first_ok"] is not None and p.start - t0 > res["first_ok"]:
                res["failed_after_ok"] += 1
            elif res["first_ok"] is None and (res["last_failed_start"] is None or
                                              p.start - t0 > res["last_failed_start"]):
                res["last_failed_start"] = p.start - t0

    while True:
        now = time.monotonic()
        stop_starting = now - t0 >= window or (
            res["first_ok"] is not None and now - t0 >= res["first_ok"] + confirm)
        if stop_starting and not live:
            break
        if not stop_starting and now >= next_start:
            p = Probe(addr, now)
            res["probes"] += 1
            next_start += gap
            if next_start < now:  # fell behind (a busy machine): no burst to catch up
                next_start = now + gap
            if p.err not in (0, errno.EINPROGRESS):
                finish(p, False, now)
            else:
                p.deadline = now + connect_timeout
                live.add(p)
                sel.register(p.sock, selectors.EVENT_WRITE, p)
            continue
        for p in [p for p in live if now >= p.deadline]:
            finish(p, False, now)
        wake = [p.deadline for p in live]
        if not stop_starting:
            wake.append(next_start)
        timeout = max(0.0, min(wake) - time.monotonic()) if wake else 0.05
        for key, _ in sel.select(timeout):
            p = key.data
            now = time.monotonic()
            if p.phase == "connect":
                if p.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    finish(p, False, now)
                    continue
                try:
                    p.sock.send(b"GET /probe HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
                except OSError:
                    finish(p, False, now)
                    continue
                p.phase, p.deadline = "answer", now + answer_timeout
                sel.modify(p.sock, selectors.EVENT_READ, p)
            else:
                try:
                    chunk = p.sock.recv(65536)
                except OSError:
                    finish(p, False, now)
                    continue
                p.buf += chunk
                try:
                    parsed = parse_response(p.buf)
                except (Fail, ValueError):
                    finish(p, False, now)
                    continue
                if parsed is not None:
                    status, body = parsed
                    finish(p, status == 200, now, body)
                elif not chunk:
                    finish(p, False, now)
    sel.close()
    return res


def owners_by_ss(nodes, port):
    """client port → node, from `ss` in every node namespace (NAME=NETNS pairs)."""
    owners = {}
    for spec in nodes:
        name, _, netns = spec.partition("=")
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "ss", "-Htn", "state", "established",
             "( sport = :%d )" % port],
            capture_output=True, text=True, timeout=10, check=False).stdout
        for p in parse_ss_ports(out):
            owners[p] = name
    return owners


def read_json_line(proc, timeout):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ok = sel.select(timeout)
    sel.close()
    if not ok:
        raise SystemExit("the load did not answer within %.0f s" % timeout)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the load exited: %s" % proc.stderr.read()[-2000:])
    return json.loads(line)


def cmd_round(args):
    targets = []
    for spec in args.kill:
        pid_s, _, expect = spec.partition(":")
        pid = int(pid_s)
        if not alive(pid) or expect not in cmdline(pid):
            raise SystemExit("refusing to kill %d: not a running %r (%r)" % (pid, expect, cmdline(pid)))
        targets.append(pid)
    load_args = [sys.executable, os.path.abspath(__file__), "load", "--vip", args.vip,
                 "--port", str(args.port), "--conns", str(args.conns),
                 "--threads", str(args.threads), "--pace", str(args.pace),
                 "--steady", str(args.steady), "--request-timeout", str(args.request_timeout)]
    load = subprocess.Popen(load_args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = read_json_line(load, args.steady + 40)
        if not ready["ready"]:
            # Nothing killed yet: the caller records it and tries the round again.
            print(json.dumps({"series": args.series, "round": args.round, "victim": args.victim,
                              "aborted": "load failed before the kill: %s"
                                         % ready["failures_before"][:3],
                              "loadavg": loadavg()}), flush=True)
            return ABORTED
        if args.attribute == "ss":
            owners = owners_by_ss(args.node, args.port)
        else:  # the body of each answer names the node
            owners = {int(p): a for p, a in ready["answerers"].items() if a}
        per_node = {}
        for p in ready["ports"]:
            o = owners.get(p, "?")
            per_node[o] = per_node.get(o, 0) + 1
        # Recheck just before the signal: the PIDs were checked above, seconds ago.
        for pid in targets:
            if not alive(pid):
                raise SystemExit("PID %d exited before the kill" % pid)
        load.stdin.write("mark\n")
        load.stdin.flush()
        t_wall = time.time()
        t0 = time.monotonic()
        for pid in targets:
            os.kill(pid, signal.SIGKILL)
        probes = probe_until((args.vip, args.port), t0, args.window, args.probe_connect,
                             args.probe_answer, args.probe_gap, args.confirm)
        time.sleep(args.settle)
        load.stdin.write("stop\n")
        load.stdin.flush()
        final = read_json_line(load, args.request_timeout + 10)
        load.wait(10)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(5)
    lost = {"victim": 0, "survivors": 0, "unattributed": 0, "before_kill": 0}
    first_survivor_failures = []
    for port, when, reason in final["failures"]:
        owner = owners.get(port, "?")
        if when < t_wall:
            lost["before_kill"] += 1
        if owner == args.victim:
            lost["victim"] += 1
        elif owner == "?":
            lost["unattributed"] += 1
        else:
            lost["survivors"] += 1
            if len(first_survivor_failures) < 5:
                first_survivor_failures.append([port, owner, round((when - t_wall) * 1000), reason])
    result = {
        "series": args.series, "round": args.round, "victim": args.victim,
        "kill_wall": t_wall,
        "failover_ms": None if probes["first_ok"] is None else round(probes["first_ok"] * 1000, 1),
        "first_ok_start_ms": None if probes["first_ok_start"] is None
        else round(probes["first_ok_start"] * 1000, 1),
        "last_failed_start_ms": None if probes["last_failed_start"] is None
        else round(probes["last_failed_start"] * 1000, 1),
        "probes": probes["probes"], "probes_failed": probes["failed"],
        "probes_failed_after_ok": probes["failed_after_ok"],
        "new_master": probes["by"],
        "conns": per_node, "lost": lost, "survivor_failures": first_survivor_failures,
        "ok_after_kill": final["ok_after_mark"],
        "survivor_max_latency_ms": final["max_latency_after_ms"],
        "window_s": args.window,
        "loadavg": loadavg(),
    }
    if args.pf_log:
        logs = {}
        for spec in args.pf_log:
            name, _, path = spec.partition("=")
            try:
                with open(path, errors="replace") as f:
                    logs[name] = f.read()
            except OSError:
                pass
        victim_id = int(re.sub(r"\D", "", args.victim) or 0)
        ev = takeover_events(logs, t_wall, victim_id)
        result["events_ms"] = {k: (None if v is None else round(v * 1000, 1))
                               for k, v in ev.items() if k != "by"}
        result["new_master"] = ev["by"] or result["new_master"]
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# `lab-status`

def cmd_lab_status(args):
    """Prints `SCHEDULER PID SETTLED` from `pentaflow lab status PREFIX` on stdin:
    SETTLED is 1 when all --nodes run, exactly one is the scheduler and every node
    names it. Exit 1 (with the reason on stderr) when there is no single scheduler."""
    roles, names, pids = parse_lab_status(sys.stdin.read())
    scheds = [n for n, r in roles.items() if r == "scheduler"]
    if len(scheds) != 1:
        print("no single scheduler: %s" % roles, file=sys.stderr)
        return 1
    sched = scheds[0]
    sched_id = re.sub(r"\D", "", sched)
    settled = (len(roles) == args.nodes and
               all(r in ("scheduler", "standby") for r in roles.values()) and
               all(v == sched_id for v in names.values()))
    running = [p for p in pids.get(sched, []) if alive(p) and "pentaflow" in cmdline(p)]
    if len(running) != 1:
        print("%s: %d running pentaflow PIDs" % (sched, len(running)), file=sys.stderr)
        return 1
    print(sched, running[0], int(settled))
    return 0


# ---------------------------------------------------------------------------
# `report`

def fmt_ms(v):
    return "—" if v is None else "%.0f" % v


def series_stats(rows):
    """Per-series figures: failover times over the kills (a kill never answered in
    its window counts as the window), requests lost, probes that failed again."""
    times = [r["failover_ms"] if r["failover_ms"] is not None else r["window_s"] * 1000
             for r in rows]
    return {
        "kills": len(rows),
        "median": median(times), "p90": percentile(times, 90),
        "max": max(times) if times else None, "min": min(times) if times else None,
        "unanswered": sum(r["failover_ms"] is None for r in rows),
        "lost_survivors": sum(r["lost"]["survivors"] for r in rows),
        "lost_unattributed": sum(r["lost"]["unattributed"] for r in rows),
        "lost_victim_median": median([r["lost"]["victim"] for r in rows]),
        "conns_on_victim_median": median([r["conns"].get(r["victim"], 0) for r in rows]),
        "conns_total": median([sum(r["conns"].values()) for r in rows]),
        "flaps": sum(r["probes_failed_after_ok"] for r in rows),
        "survivor_max_latency": max((r["survivor_max_latency_ms"] for r in rows), default=None),
    }


def render_report(rows, settings):
    aborted = [r for r in rows if r.get("aborted")]
    rows = [r for r in rows if not r.get("aborted")]
    order = []
    for r in rows:
        if r["series"] not in order:
            order.append(r["series"])
    by = {s: [r for r in rows if r["series"] == s] for s in order}
    stats = {s: series_stats(by[s]) for s in order}
    out = ["# Failover: pentaflow against keepalived/VRRP, %s" % settings.get("date", ""), ""]
    for key, value in settings.get("lines", []):
        out.append("- %s: %s" % (key, value))
    out += ["", "| series | kills | median ms | p90 ms | max ms | min ms | not answered in window "
            "| requests lost on surviving nodes | requests lost on the killed node (median/kill) "
            "| connections on the killed node (median of total) | probes failing after recovery "
            "| takeovers no kill explains | rounds aborted before the kill |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in order:
        st = stats[s]
        spurious = settings.get("spurious", {}).get(s)
        out.append("| %s | %d | **%s** | %s | %s | %s | %d | **%d**%s | %s | %s of %s | %d | %s | %d |" % (
            settings.get("labels", {}).get(s, s), st["kills"], fmt_ms(st["median"]),
            fmt_ms(st["p90"]), fmt_ms(st["max"]), fmt_ms(st["min"]), st["unanswered"],
            st["lost_survivors"],
            " (+%d unattributed)" % st["lost_unattributed"] if st["lost_unattributed"] else "",
            fmt_ms(st["lost_victim_median"]), fmt_ms(st["conns_on_victim_median"]),
            fmt_ms(st["conns_total"]), st["flaps"], "—" if spurious is None else spurious,
            sum(a["series"] == s for a in aborted)))
    pf = stats.get("pentaflow")
    if pf and pf["median"]:
        out.append("")
        for s in order:
            if s != "pentaflow" and stats[s]["median"]:
                out.append("- median ratio %s / pentaflow: **%.2f×**" % (
                    settings.get("labels", {}).get(s, s), stats[s]["median"] / pf["median"]))
    pf_rows = [r for r in by.get("pentaflow", []) if r.get("events_ms")]
    if pf_rows:
        out += ["", "Where pentaflow's time goes (ms after the SIGKILL; the nodes' own log "
                "timestamps, same clock as the kill):", "",
                "| step | min | median | p90 | max | kills |", "|---|---|---|---|---|---|"]
        steps = [
            ("first survivor logs `node failed` (detection)",
             lambda r: r["events_ms"]["failed"]),
            ("`elected scheduler` logged", lambda r: r["events_ms"]["elected"]),
            ("`scheduler up (gratuitous ARP sent)` (data plane ready)",
             lambda r: r["events_ms"]["up"]),
            ("`live-bucket merge done` (new buckets assigned)",
             lambda r: r["events_ms"]["accepting"]),
            ("first answered probe", lambda r: r["failover_ms"]),
            ("— `scheduler up` after detection (election + data-plane set-up)",
             lambda r: _diff(r["events_ms"]["up"], r["events_ms"]["failed"])),
            ("— data-plane set-up: `elected` → `scheduler up` on the new scheduler (kills "
             "where it logged them in that order)",
             lambda r: _nonneg(_diff(r["events_ms"]["up"], r["events_ms"]["elected"]))),
            ("— first answer after `scheduler up` (gratuitous ARP to the router, probe "
             "granularity)", lambda r: _diff(r["failover_ms"], r["events_ms"]["up"])),
        ]
        for label, get in steps:
            vals = [v for v in (get(r) for r in pf_rows) if v is not None]
            out.append("| %s | %s | %s | %s | %s | %d |" % (
                label, fmt_ms(min(vals) if vals else None), fmt_ms(median(vals)),
                fmt_ms(percentile(vals, 90)), fmt_ms(max(vals) if vals else None), len(vals)))
    if aborted:
        out += ["", "Rounds aborted before the kill (the load broke on its own; retried):", ""]
        for a in aborted:
            out.append("- %s round %s (%s the master/scheduler): %s" % (
                a["series"], a["round"], a["victim"], a["aborted"]))
    out += ["", "Every kill:", "",
            "| # | series | killed | took over | failover ms | last failed probe started ms "
            "| lost: killed node / survivors | slowest request answered after the kill ms "
            "| load average |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %s | %s | %s | %s | %s | %d / %d | %s | %s |" % (
            r["round"], r["series"], r["victim"], r.get("new_master") or "?",
            fmt_ms(r["failover_ms"]), fmt_ms(r["last_failed_start_ms"]),
            r["lost"]["victim"], r["lost"]["survivors"] + r["lost"]["unattributed"],
            fmt_ms(r["survivor_max_latency_ms"]),
            "—" if r.get("loadavg") is None else "%.2f" % r["loadavg"]))
    return "\n".join(out) + "\n"


def _diff(a, b):
    return None if a is None or b is None else a - b


def _nonneg(v):
    return None if v is None or v < 0 else v


def read_settings(text):
    """The settings file of failover.sh: tab-separated lines `line KEY VALUE`,
    `label SERIES LABEL` and `date VALUE`."""
    settings = {"lines": [], "labels": {}, "date": ""}
    for raw in text.splitlines():
        f = raw.split("\t")
        if f[0] == "line" and len(f) >= 3:
            settings["lines"].append((f[1], "\t".join(f[2:])))
        elif f[0] == "label" and len(f) >= 3:
            settings["labels"][f[1]] = f[2]
        elif f[0] == "date" and len(f) >= 2:
            settings["date"] = f[1]
        elif f[0] == "logs" and len(f) >= 3:
            settings.setdefault("logs", {})[f[1]] = f[2]
    return settings


# A new master or scheduler, as each side logs it.
TAKEOVER_LINES = {"pentaflow": "elected scheduler", "keepalived": "Entering MASTER STATE"}


def takeovers_in_logs(log_dir, stem, kind):
    """How many times a node of a series became master/scheduler, over the logs
    <log_dir>/<stem><N>.log of its nodes (None if there are none)."""
    needle = TAKEOVER_LINES[kind]
    total, found = 0, False
    for name in sorted(os.listdir(log_dir)):
        if re.fullmatch(re.escape(stem) + r"\d+\.log", name):
            found = True
            with open(os.path.join(log_dir, name), errors="replace") as f:
                total += sum(needle in line for line in f)
    return total if found else None


def spurious_takeovers(settings, rows, log_dir):
    """{series: takeovers the kills do not explain}: every takeover logged, less
    the first election at start-up and one per kill."""
    out = {}
    for series, stem in settings.get("logs", {}).items():
        kind = "pentaflow" if series == "pentaflow" else "keepalived"
        total = takeovers_in_logs(log_dir, stem, kind)
        if total is not None:
            kills = sum(r["series"] == series and not r.get("aborted") for r in rows)
            out[series] = total - 1 - kills
    return out


def cmd_report(args):
    with open(args.results) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(args.settings) as f:
        settings = read_settings(f.read())
    if args.logs:
        settings["spurious"] = spurious_takeovers(settings, rows, args.logs)
    sys.stdout.write(render_report(rows, settings))


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="keep-alive HTTP server answering NAME PATH")
    s.add_argument("name")
    s.add_argument("bind")
    s.add_argument("port", type=int)

    def common(p):
        p.add_argument("--vip", required=True)
        p.add_argument("--port", type=int, default=80)
        p.add_argument("--conns", type=int, default=100)
        p.add_argument("--threads", type=int, default=10)
        p.add_argument("--pace", type=float, default=0.02,
                       help="seconds between two requests of one connection (at least)")
        p.add_argument("--steady", type=float, default=1.5,
                       help="load runs at least this long before the kill")
        p.add_argument("--request-timeout", type=float, default=5.0)

    ld = sub.add_parser("load", help="(internal) the keep-alive load of `round`")
    common(ld)

    r = sub.add_parser("round", help="one SIGKILL under load; prints a JSON line")
    common(r)
    r.add_argument("--series", required=True)
    r.add_argument("--round", type=int, default=0)
    r.add_argument("--victim", required=True, help="node name of the killed node")
    r.add_argument("--kill", action="append", required=True,
                   help="PID:EXPECTED (the PID's command line must contain EXPECTED)")
    r.add_argument("--attribute", choices=("ss", "body"), required=True)
    r.add_argument("--node", action="append", default=[], help="NAME=NETNS (for --attribute ss)")
    r.add_argument("--pf-log", action="append", default=[], help="NAME=LOGFILE of pentaflow")
    r.add_argument("--window", type=float, default=3.0, help="probe this long at most (s)")
    r.add_argument("--probe-connect", type=float, default=0.05)
    r.add_argument("--probe-answer", type=float, default=0.5)
    r.add_argument("--probe-gap", type=float, default=0.01)
    r.add_argument("--confirm", type=float, default=0.3,
                   help="keep probing this long after the first answer (flapping)")
    r.add_argument("--settle", type=float, default=0.5,
                   help="load keeps running this long after the probes")

    st = sub.add_parser("lab-status", help="scheduler, its PID, settled (stdin: lab status)")
    st.add_argument("--nodes", type=int, default=3)

    rp = sub.add_parser("report", help="markdown report of a results file")
    rp.add_argument("results")
    rp.add_argument("settings")
    rp.add_argument("--logs", help="directory of the nodes' logs (spurious takeovers)")

    args = ap.parse_args(argv)
    return {"serve": cmd_serve, "load": cmd_load, "round": cmd_round,
            "lab-status": cmd_lab_status, "report": cmd_report}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
