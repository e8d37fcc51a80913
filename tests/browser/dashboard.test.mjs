// The dashboard in a real browser: Playwright (playwright-core) driving Debian's Chromium
// against a real `pentaflow demo` and a real `pentaflow serve` with back-ends this test starts
// and takes down. Needs the pentaflow binary (PENTAFLOW_BIN, default target/debug/pentaflow)
// and /usr/bin/chromium (scripts/install-deps installs both the package and this folder's npm
// dependencies). PENTAFLOW_SCREENSHOT_DIR=docs writes the README's screenshots.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { BIN, CHROMIUM, SHOTS, waitFor } from "./support.mjs";


const cleanups = [];
after(async () => {
  for (const f of cleanups.reverse()) await f();
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts a pentaflow process; it is stopped (SIGTERM, by PID) when the tests end. */
function pentaflow(args) {
  assert.ok(fs.existsSync(BIN), `no pentaflow binary at ${BIN}: run cargo build -p pentaflow first`);
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const done = new Promise((r) => child.once("exit", r));
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await Promise.race([done, new Promise((r) => setTimeout(r, 8000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return { child, log: () => output };
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  assert.equal(r.status, 200, `${url}: ${r.status}`);
  return r.json();
}

async function browser() {
  assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium (scripts/install-deps does)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pentaflow-browser-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  cleanups.push(async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
  // Nothing may leave this machine's loopback: the page is self-contained.
  const outside = [];
  page.on("request", (r) => { if (!/^(http:\/\/127\.0\.0\.1:|data:)/.test(r.url())) outside.push(r.url()); });
  return { page, problems, outside };
}

/** The Web Server Status Table as the page shows it: key -> {state, address, hits}. */
async function pageRows(page) {
  return page.$$eval("#web-servers tbody tr", (rows) => rows.map((r) => ({
    key: r.dataset.key, state: r.dataset.state, address: r.children[2].textContent,
    hits: Number(r.children[5].textContent.replace(/,/g, "")), changed: r.classList.contains("changed"),
  })));
}

function httpGet(url, options = {}) {
  const lib = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    lib.get(url, { rejectUnauthorized: false, ...options }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    }).on("error", reject);
  });
}

test("demo: the node page loads with no console error, matches /status and shows TLS and CDN", async () => {
  const [listen, tls, admin] = [await freePort(), await freePort(), await freePort()];
  const node = pentaflow(["demo", "--listen", `127.0.0.1:${listen}`, "--https", `127.0.0.1:${tls}`,
    "--admin", `127.0.0.1:${admin}`]);
  const base = `http://127.0.0.1:${admin}`;
  await waitFor("the demo's admin API", async () => (await fetch(base + "/healthz")).ok).catch((e) => {
    throw new Error(e.message + "\n" + node.log());
  });
  // Some traffic: plain, TLS, and the CDN page twice (the second from the page cache).
  for (let i = 0; i < 12; i++) assert.equal(await httpGet(`http://127.0.0.1:${listen}/`), 200);
  assert.equal(await httpGet(`https://127.0.0.1:${tls}/`), 200);
  for (let i = 0; i < 2; i++) assert.equal(await httpGet(`http://127.0.0.1:${listen}/demo/page.html`), 200);

  const { page, problems, outside } = await browser();
  await page.goto(base + "/");
  await page.waitForSelector("#web-servers tbody tr");
  const status = await getJson(base + "/status");
  // Hits move only with traffic, which has stopped: the page and /status agree row by row.
  await waitFor("the page to show /status", async () => {
    const rows = await pageRows(page);
    return rows.length === status.web_servers.length && status.web_servers.every((w) => {
      const r = rows.find((x) => x.key === `${w.service}/${w.name}`);
      return r && r.state === w.state && r.address === w.address && r.hits === w.hits;
    });
  }, 5000);
  assert.equal(status.web_servers.reduce((a, w) => a + w.hits, 0) >= 15, true);
  const handshakes = await page.textContent('[data-metric="tls_handshakes"]');
  assert.ok(Number(handshakes) >= 1, `TLS handshakes shown: ${handshakes}`);
  assert.match(await page.textContent("#cdn"), /cdn\.pentaflow-demo\.example/);
  assert.match(await page.textContent('[data-cdn="hit-rate"]'), /%/);
  // Sparklines have points after a few polls.
  await waitFor("sparkline points", async () => {
    const n = await page.$$eval("#web-servers polyline", (ls) => Math.max(...ls.map((l) => l.getAttribute("points").split(" ").length)));
    return n >= 3;
  }, 8000);
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, "dashboard-node.png"), fullPage: true });
  await page.goto(base + "/#array");
  await page.waitForSelector("#no-array:not([hidden])");
  assert.deepEqual(problems, [], "console errors or warnings");
  assert.deepEqual(outside, [], "requests that leave the node");
});

test("serve: a back-end taken down shows as down on the page within 2 s, and in the events", async () => {
  const servers = [];
  const backends = [];
  for (const name of ["app1", "app2"]) {
    const port = await freePort();
    const server = http.createServer((req, res) => res.end(req.url === "/health" ? "ok\n" : `hello from ${name}\n`));
    await new Promise((r) => server.listen(port, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }));
    servers.push(server);
    backends.push({ name, port });
  }
  const [listen, admin] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pentaflow-browser-cfg-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, "pentaflow.toml");
  fs.writeFileSync(config, [
    "[node]", `admin = "127.0.0.1:${admin}"`, "",
    "[[service]]", 'name = "web"', `listen = ["127.0.0.1:${listen}"]`, 'policy = "least_conn"', "",
    "[service.health]", 'path = "/health"', 'interval = "300ms"', 'timeout = "200ms"', "fall = 1", "rise = 1", "",
    ...backends.flatMap((b) => ["[[service.backend]]", `name = "${b.name}"`, `address = "127.0.0.1:${b.port}"`, ""]),
  ].join("\n"));
  const node = pentaflow(["serve", "--config", config]);
  const base = `http://127.0.0.1:${admin}`;
  await waitFor("both back-ends up", async () => {
    const s = await getJson(base + "/status");
    return s.web_servers.length === 2 && s.web_servers.every((w) => w.state === "up");
  }).catch((e) => { throw new Error(e.message + "\n" + node.log()); });

  const { page, problems } = await browser();
  await page.goto(base + "/");
  await waitFor("two rows up", async () => (await pageRows(page)).filter((r) => r.state === "up").length === 2, 5000);

  // Take app2 down for real: its listener closes, so health checks get refused. From then on
  // the page has 2 s: the health check (every 300 ms here) and at most one poll (1 s).
  const killed = Date.now();
  await new Promise((r) => { servers[1].closeAllConnections(); servers[1].close(() => r()); });
  await waitFor("the page to show app2 down", async () => {
    const r = (await pageRows(page)).find((x) => x.key === "web/app2");
    return r.state === "down" && r.changed;
  }, 2000, 50);
  assert.ok(Date.now() - killed <= 2000, `shown as down ${Date.now() - killed} ms after the kill`);
  const s = await getJson(base + "/status");
  assert.equal(s.web_servers.find((w) => w.name === "app2").state, "down", "the page agrees with /status");
  await waitFor("the event", async () => (await page.textContent("#node-events")).includes("back-end app2 of web is down"), 3000);
  assert.deepEqual(problems, [], "console errors or warnings");
});
