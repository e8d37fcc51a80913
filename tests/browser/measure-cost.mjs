// What the dashboard costs the node: not a test (timing), a measurement run by hand under the
// benchmark lock:
//   flock /tmp/pentaflow-bench.lock node tests/browser/measure-cost.mjs [ROUNDS] [SECONDS]
// Starts `pentaflow demo` (PENTAFLOW_BIN, default target/release/pentaflow), then alternates wrk rounds with no page open and with the node page open
// in Chromium (polling every second), and prints the median requests/s of each and their
// ratio, and the node's CPU time per second of an idle node with and without the page.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.PENTAFLOW_BIN || path.resolve(here, "../../target/release/pentaflow");
const ROUNDS = Number(process.argv[2] || 5);
const SECONDS = Number(process.argv[3] || 5);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** utime + stime of `pid`, in seconds. */
function cpu(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks: USER_HZ is 100 on Linux
}

function wrk(url) {
  const out = execFileSync("wrk", ["-t1", "-c32", `-d${SECONDS}s`, url], { encoding: "utf8" });
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
}

const [listen, tls, admin] = [await freePort(), await freePort(), await freePort()];
const node = spawn(BIN, ["demo", "--listen", `127.0.0.1:${listen}`, "--https", `127.0.0.1:${tls}`,
  "--admin", `127.0.0.1:${admin}`], { stdio: "ignore", env: { ...process.env, PENTAFLOW_LOG: "warn" } });
try {
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`http://127.0.0.1:${admin}/healthz`)).ok) break; } catch { /* starting */ }
    await sleep(100);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pentaflow-cost-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || (await context.newPage());
  const url = `http://127.0.0.1:${listen}/`;
  wrk(url); // warm-up
  const closed = [], open = [];
  for (let r = 0; r < ROUNDS; r++) {
    await page.goto("about:blank");
    closed.push(wrk(url));
    await page.goto(`http://127.0.0.1:${admin}/`);
    await page.waitForSelector("#web-servers tbody tr");
    open.push(wrk(url));
  }
  // CPU of the idle node (its sampler only), then with the page polling.
  await page.goto("about:blank");
  let t0 = cpu(node.pid); await sleep(20000); const idle = (cpu(node.pid) - t0) / 20;
  await page.goto(`http://127.0.0.1:${admin}/`);
  await sleep(2000);
  t0 = cpu(node.pid); await sleep(20000); const watched = (cpu(node.pid) - t0) / 20;
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  console.log(`requests/s, page closed: ${closed.map(Math.round).join(" ")} (median ${Math.round(median(closed))})`);
  console.log(`requests/s, page open:   ${open.map(Math.round).join(" ")} (median ${Math.round(median(open))})`);
  console.log(`ratio open/closed: ${(median(open) / median(closed)).toFixed(3)}`);
  console.log(`idle node CPU: ${(idle * 1000).toFixed(1)} ms/s without the page, ${(watched * 1000).toFixed(1)} ms/s with it open`);
} finally {
  node.kill("SIGTERM");
}
