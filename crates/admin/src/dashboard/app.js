// pentaflow dashboard: polls this node's admin API once a second and draws the Web Server
// Status Table with sparklines, the TLS/HTTP/2 counters, the CDN page, and for an array the
// Node Status Table, the bucket picture, the Summary Web Server Status Table and the events
// timeline. Plain DOM and SVG: no library, nothing loaded from elsewhere.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "pentaflow-admin-token";
const FLASH_MS = 10000;
// Colours of nodes in the bucket picture and the Node Status Table (by node id).
const PALETTE = ["#3566a8", "#e07b39", "#2e9e6b", "#b8457f", "#7b5cc4", "#c9a227", "#3aa6b9", "#8c564b",
  "#d1495b", "#5f7f2a", "#4b6584", "#a55eea"];

const state = {
  since: 0, eventsSince: 0, samples: 300,
  series: new Map(), events: [], rowStates: new Map(), changedAt: new Map(),
  nodeStates: new Map(), nodeChangedAt: new Map(),
  lastOk: 0, waitingForToken: false, hasCluster: false,
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    // Colours through the CSSOM: the page's Content-Security-Policy forbids style attributes.
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class NeedsToken extends Error {}

async function get(path) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new NeedsToken();
  if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()).trim());
  return response.json();
}

function askForToken(wrong) {
  state.waitingForToken = true;
  document.getElementById("token-form").hidden = false;
  document.getElementById("token-error").textContent = wrong ? "That token was refused." : "";
  for (const id of ["page-node", "page-array"]) document.getElementById(id).hidden = true;
}

function fmt(n, digits) {
  if (n === null || n === undefined) return "–";
  if (typeof n !== "number") return String(n);
  if (digits !== undefined) return n.toFixed(digits);
  return n.toLocaleString("en-US");
}

function ago(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
}

function clock(ms) { return new Date(ms).toLocaleTimeString("en-GB", { hour12: false }); }

function spark(values, unit, digits, cls) {
  const w = 90, h = 20;
  const data = values && values.length ? values : [0];
  const max = Math.max(...data, 1e-9);
  const step = data.length > 1 ? w / (data.length - 1) : 0;
  const points = data.map((v, i) => (i * step).toFixed(1) + "," + (h - 1 - (v / max) * (h - 2)).toFixed(1)).join(" ");
  const picture = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": unit });
  picture.append(svg("polyline", { points }));
  const last = data[data.length - 1];
  return el("span", { class: "spark " + (cls || "") }, picture, el("span", {}, fmt(last, digits) + " " + unit));
}

function mergeHistory(doc) {
  if (doc.seq < state.since) { // The node restarted: start again.
    state.series.clear(); state.events = []; state.since = 0; state.eventsSince = 0;
    return false;
  }
  state.samples = doc.samples || state.samples;
  const present = new Set();
  for (const s of doc.series) {
    const key = s.service + "/" + s.name;
    present.add(key);
    const mine = state.series.get(key);
    if (mine && mine.first_seq + mine.rate.length === s.first_seq) {
      for (const f of ["rate", "response_ms", "errors"]) mine[f].push(...s[f]);
    } else if (!mine || s.rate.length) {
      state.series.set(key, { first_seq: s.first_seq, rate: s.rate, response_ms: s.response_ms, errors: s.errors });
    }
    const m = state.series.get(key);
    const extra = m.rate.length - state.samples;
    if (extra > 0) {
      for (const f of ["rate", "response_ms", "errors"]) m[f].splice(0, extra);
      m.first_seq += extra;
    }
  }
  for (const key of [...state.series.keys()]) if (!present.has(key)) state.series.delete(key);
  state.events.push(...doc.events);
  state.events = state.events.slice(-200);
  state.since = doc.seq;
  state.eventsSince = doc.event_seq;
  return true;
}

function renderWebServers(status) {
  const now = Date.now();
  const rows = status.web_servers.map((r) => {
    const key = r.service + "/" + r.name;
    const before = state.rowStates.get(key);
    if (before !== undefined && before !== r.state) state.changedAt.set(key, now);
    state.rowStates.set(key, r.state);
    const changed = now - (state.changedAt.get(key) || 0) < FLASH_MS;
    const s = state.series.get(key) || { rate: [], response_ms: [], errors: [] };
    return el("tr", { "data-key": key, "data-state": r.state, class: changed ? "changed" : null },
      el("td", {}, r.service), el("td", {}, r.name), el("td", {}, r.address),
      el("td", { class: "state-" + r.state }, r.state), el("td", { class: "n" }, fmt(r.weight)),
      el("td", { class: "n" }, fmt(r.hits)),
      el("td", {}, spark(s.rate, "/s", 1)), el("td", {}, spark(s.response_ms, "ms", 1)),
      el("td", {}, spark(s.errors, "/s", 1, "err")),
      el("td", { class: "n" }, fmt(r.open_connections)), el("td", { class: "n" }, fmt(r.active_requests)),
      el("td", { class: "n" }, fmt(r.failures)), el("td", { class: "n" }, fmt(r.session_groups)));
  });
  document.querySelector("#web-servers tbody").replaceChildren(...rows);
}

function counters(target, metrics, names) {
  const value = new Map(metrics.filter((m) => !m.labels).map((m) => [m.name, m]));
  const items = [];
  for (const [name, label] of names) {
    const m = value.get(name);
    if (!m) continue;
    items.push(el("dt", { title: m.help }, label), el("dd", { "data-metric": name }, fmt(m.value)));
  }
  document.getElementById(target).replaceChildren(...items);
}

function renderCdn(cdn) {
  const box = document.getElementById("cdn");
  if (!cdn) {
    box.replaceChildren(el("p", { class: "hint" }, "No service rewrites URLs to a CDN."));
    return;
  }
  const parts = [];
  for (const [service, r] of Object.entries(cdn)) {
    const c = r.cache || {};
    const lookups = (c.hits || 0) + (c.misses || 0);
    const rate = lookups ? ((100 * c.hits) / lookups).toFixed(1) + " %" : "–";
    const p = r.pages || {};
    const mode = r.mode && r.mode.kind === "auto"
      ? `auto: static objects with at least ${r.mode.min_hits} sampled hits` + (r.mode.top_k ? `, top ${r.mode.top_k}` : "")
      : "explicit: every URL matching the rules";
    parts.push(el("h3", {}, service + " → " + r.cdn_host));
    const rules = [...(r.path_prefixes || []).map((p) => p + "…"), ...(r.extensions || []).map((e) => "*." + e.replace(/^\./, ""))];
    parts.push(el("p", { class: "hint" }, "Mode " + mode + ". Rules: " + (rules.length ? rules.join(", ") : "none") + "."));
    parts.push(el("dl", { class: "counters" },
      el("dt", {}, "Page cache hit rate"), el("dd", { "data-cdn": "hit-rate" }, rate),
      el("dt", {}, "Cache entries"), el("dd", {}, fmt(c.entries)),
      el("dt", {}, "Pages rewritten"), el("dd", {}, fmt(p.rewritten)),
      el("dt", {}, "URLs rewritten"), el("dd", {}, fmt(p.urls_rewritten)),
      el("dt", {}, "Rewrite errors"), el("dd", {}, fmt(p.errors))));
    const objects = (r.objects || []).slice(0, 15).map((o) => el("tr", {},
      el("td", {}, o.path), el("td", { class: "n" }, fmt(o.hits)), el("td", {}, o.content_type || ""),
      el("td", { class: o.on_cdn ? "state-up" : "" }, o.on_cdn ? "CDN" : "origin"), el("td", {}, String(o.why).replace(/_/g, " "))));
    if (objects.length) {
      parts.push(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Object"), el("th", { class: "n" }, "Hits"),
        el("th", {}, "Type"), el("th", {}, "Served from"), el("th", {}, "Why"))), el("tbody", {}, ...objects)));
    } else {
      parts.push(el("p", { class: "hint" }, "No object sampled yet."));
    }
  }
  box.replaceChildren(...parts);
}

function renderEvents(target) {
  const items = state.events.slice().reverse().map((e) => el("li", { "data-kind": e.kind },
    el("time", { datetime: new Date(e.at_ms).toISOString() }, clock(e.at_ms)),
    el("span", { class: "kind kind-" + e.kind }, e.kind.replace(/_/g, " ")), e.text));
  if (!items.length) items.push(el("li", { class: "hint" }, "Nothing happened since this node started."));
  document.getElementById(target).replaceChildren(...items);
}

function colour(id) { return id === null || id === undefined ? "#e3e6e9" : PALETTE[(id - 1 + PALETTE.length) % PALETTE.length]; }

function renderCluster(c) {
  document.getElementById("no-array").hidden = !!c;
  document.getElementById("array-body").hidden = !c;
  if (!c) return;
  const now = Date.now();
  document.getElementById("array-line").textContent =
    `This node: ${c.node ?? "–"} (${c.role}). Scheduler: node ${c.scheduler ?? "none"}. Configuration version ${c.config_version}.`;
  const rows = c.nodes.map((n) => {
    const st = n.state + "/" + n.role;
    const before = state.nodeStates.get(n.id);
    if (before !== undefined && before !== st) state.nodeChangedAt.set(n.id, now);
    state.nodeStates.set(n.id, st);
    const changed = now - (state.nodeChangedAt.get(n.id) || 0) < FLASH_MS;
    const cls = [n.self ? "self" : "", changed ? "changed" : ""].join(" ").trim() || null;
    return el("tr", { "data-node": n.id, "data-state": n.state, "data-role": n.role, class: cls },
      el("td", { class: "n" }, el("i", { class: "dot", style: { color: colour(n.id) } }, "■ "), String(n.id)),
      el("td", {}, n.address), el("td", { class: n.role === "scheduler" ? "state-scheduler" : "" }, n.role ?? "–"),
      el("td", { class: "state-" + n.state }, n.state), el("td", { class: "n" }, fmt(n.priority)),
      el("td", { class: "n" }, fmt(n.weight)), el("td", { class: "n" }, fmt(n.load_permille)),
      el("td", { class: "n" }, fmt(n.open_connections)), el("td", { class: "n" }, fmt(n.hits)),
      el("td", { class: "n" }, fmt(n.live_buckets)), el("td", { class: "n" }, fmt(n.buckets)),
      el("td", { class: "n" }, ago(n.heard_ms_ago)), el("td", { class: "n" }, fmt(n.table_version)),
      el("td", { class: "n" }, fmt(n.config_version)));
  });
  document.querySelector("#nodes tbody").replaceChildren(...rows);
  const summary = (c.summary || []).map((r) => el("tr", { "data-key": r.service + "/" + r.backend, "data-state": r.state },
    el("td", {}, r.service), el("td", {}, r.backend), el("td", {}, r.address),
    el("td", { class: "state-" + r.state }, r.state), el("td", { class: "n" }, fmt(r.nodes_up)),
    el("td", { class: "n" }, fmt(r.nodes_down)), el("td", { class: "n" }, fmt(r.hits)),
    el("td", { class: "n" }, fmt(r.open_connections)), el("td", { class: "n" }, fmt(r.session_groups)),
    el("td", { class: "n" }, fmt(r.avg_response_ms, 1) + " ms"), el("td", { class: "n" }, ago(r.age_ms))));
  document.querySelector("#summary tbody").replaceChildren(...summary);
}

function renderBuckets(b) {
  const box = document.getElementById("bucket-picture");
  if (!b) { box.replaceChildren(); return; }
  const cols = Math.min(64, b.node.length), size = 9, gap = 1;
  const rows = Math.ceil(b.node.length / cols);
  const picture = svg("svg", { viewBox: `0 0 ${cols * (size + gap)} ${rows * (size + gap)}`, id: "bucket-svg",
    width: cols * (size + gap), role: "img", "aria-label": "bucket table" });
  const count = new Map();
  b.node.forEach((node, i) => {
    const share = b.assigned[i] / b.per_cell;
    count.set(node, (count.get(node) || 0) + b.assigned[i]);
    const rect = svg("rect", { x: (i % cols) * (size + gap), y: Math.floor(i / cols) * (size + gap), width: size, height: size,
      rx: 1, fill: colour(node), "fill-opacity": node === null ? 1 : (0.55 + 0.45 * share).toFixed(2),
      "data-node": node === null ? "idle" : node });
    const first = i * b.per_cell;
    const title = svg("title", {});
    title.textContent = b.per_cell === 1 ? `bucket ${first}: ` + (node === null ? "idle" : "node " + node)
      : `buckets ${first}–${first + b.per_cell - 1}: ${b.assigned[i]} assigned` + (node === null ? "" : ", mostly node " + node);
    rect.append(title);
    picture.append(rect);
  });
  box.replaceChildren(picture);
  const idle = b.size - [...count.entries()].filter(([n]) => n !== null).reduce((a, [, c]) => a + c, 0);
  const legend = [...count.keys()].filter((n) => n !== null).sort((x, y) => x - y)
    .map((n) => el("span", { "data-legend": n }, el("i", { style: { background: colour(n) } }), `node ${n}: ${count.get(n)}`));
  legend.push(el("span", { "data-legend": "idle" }, el("i", { style: { background: colour(null) } }), `idle: ${idle}`));
  document.getElementById("bucket-legend").replaceChildren(...legend);
  document.getElementById("buckets-line").textContent = `${b.size} buckets, version ${b.version}` +
    (b.per_cell > 1 ? `, ${b.per_cell} buckets per cell (a faded cell has idle buckets)` : "; a faded cell is idle (no connection)") + ".";
}

function page() { return location.hash === "#array" ? "array" : "node"; }

function showPage() {
  if (state.waitingForToken) return;
  const p = page();
  document.getElementById("page-node").hidden = p !== "node";
  document.getElementById("page-array").hidden = p !== "array";
  document.getElementById("tab-node").classList.toggle("active", p === "node");
  document.getElementById("tab-array").classList.toggle("active", p === "array");
}

async function poll() {
  if (state.waitingForToken) return;
  const array = page() === "array";
  try {
    const [status, history, extra, buckets] = await Promise.all([
      get("/status"),
      get(`/ui/history?since=${state.since}&events_since=${state.eventsSince}`),
      array ? get("/cluster") : get("/cdn"),
      array ? get("/ui/buckets") : Promise.resolve(null),
    ]);
    if (!mergeHistory(history)) return;
    document.getElementById("node-name").textContent = status.node + " · up " + status.uptime_secs + " s";
    if (array) {
      renderCluster(extra);
      renderBuckets(buckets);
      renderEvents("array-events");
    } else {
      renderWebServers(status);
      counters("tls", status.metrics, [["tls_handshakes", "Handshakes"], ["tls13_handshakes", "TLS 1.3"],
        ["tls_resumed", "Resumed"], ["tls_failed", "Failed"], ["tls_over_limit", "Over the handshake limit"],
        ["http2_connections", "HTTP/2 connections"]]);
      counters("node-counters", status.metrics, [["connections_open", "Open connections"],
        ["connections_accepted", "Accepted"], ["connections_refused", "Refused (limit)"], ["requests", "Requests"],
        ["local_4xx", "Refused by the proxy (4xx)"], ["local_5xx", "Answered by the proxy (5xx)"]]);
      renderCdn(extra);
      renderEvents("node-events");
    }
    state.lastOk = Date.now();
    document.getElementById("error").textContent = "";
    showPage();
  } catch (e) {
    if (e instanceof NeedsToken) { askForToken(!!token()); return; }
    document.getElementById("error").textContent = "Cannot read the admin API: " + e.message;
  }
}

function tick() {
  const live = document.getElementById("live");
  if (state.waitingForToken) { live.textContent = "needs the admin token"; return; }
  const stale = Date.now() - state.lastOk > 3 * POLL_MS;
  live.classList.toggle("stale", stale);
  live.textContent = state.lastOk ? (stale ? "not updated since " : "live · ") + clock(state.lastOk) : "connecting…";
}

function start() {
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    document.getElementById("token-form").hidden = true;
    state.waitingForToken = false;
    poll();
  });
  window.addEventListener("hashchange", () => { showPage(); poll(); });
  showPage();
  poll();
  // setTimeout after each answer, not setInterval: a slow node never gets overlapping polls.
  const loop = async () => { await poll(); tick(); setTimeout(loop, POLL_MS); };
  setTimeout(loop, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
