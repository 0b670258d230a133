// slotguard dashboard: polls /api/state about every second and updates the
// page in place. Every value from the server is user data (task IDs, types,
// partition names): it reaches the DOM only through textContent, dataset and
// form values, never as markup.
"use strict";

const POLL_MS = 1000;
const PAGE = 50; // limiters per page; "Show more" adds as many, up to MAX_PAGE
const MAX_PAGE = 500;
const SVG = "http://www.w3.org/2000/svg";
const cards = new Map(); // limiter name -> card
let token = sessionStorage.getItem("slotguard-token") || "";
let edit = { allowed: false };
let timer = null;
let pageLimit = PAGE;

// el makes an element; children may be strings, which become text nodes.
function el(tag, cls, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  e.append(...children);
  return e;
}

function authHeaders() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function fmtMs(v) {
  if (v < 0) return "–";
  if (v < 1) return v.toFixed(2) + " ms";
  if (v < 1000) return Math.round(v) + " ms";
  return (v / 1000).toFixed(v < 10000 ? 2 : 1) + " s";
}

function fmtLease(s) {
  return s < 0 ? "expired" : s.toFixed(1) + " s left";
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// stateURL asks for the page of limiters the filter and "Show more" select:
// the server ranks them, busiest first.
function stateURL() {
  const q = new URLSearchParams({ limit: String(pageLimit) });
  const filter = document.getElementById("filter").value.trim();
  if (filter) q.set("filter", filter);
  return "api/state?" + q.toString();
}

let pollSeq = 0; // only the latest poll's answer is shown

async function poll() {
  clearTimeout(timer);
  const seq = ++pollSeq;
  try {
    const resp = await fetch(stateURL(), { headers: authHeaders(), cache: "no-store" });
    if (seq !== pollSeq) return;
    if (resp.status === 401 || resp.status === 403) {
      // The server shows nothing to a request that may not change limits.
      const body = await resp.json().catch(() => ({}));
      renderLocked(body.edit || { allowed: false, reason: body.error || "HTTP " + resp.status });
    } else if (!resp.ok) {
      throw new Error("HTTP " + resp.status);
    } else {
      render(await resp.json());
    }
  } catch (err) {
    showError("The worker did not answer (" + err.message + "); retrying.");
    const status = document.getElementById("status");
    setText(status, "Disconnected");
    status.classList.add("down");
  }
  clearTimeout(timer);
  timer = setTimeout(poll, document.hidden ? 5 * POLL_MS : POLL_MS);
}

function showError(msg) {
  const e = document.getElementById("error");
  e.hidden = !msg;
  setText(e, msg || "");
}

function render(st) {
  showError(st.error ? st.error + "; showing what could be read." : "");
  const at = new Date(st.now);
  const status = document.getElementById("status");
  setText(status, "Live · updated " + at.toLocaleTimeString());
  status.classList.remove("down");
  renderAccess(st.edit);
  renderQueues(st.queues, st.queues_error);
  renderLimiters(st.limiters);
  renderCount(st);
  setText(document.getElementById("unguarded"), st.unguarded_requeues > 0
    ? "Handlers of tasks holding no slot asked for " + st.unguarded_requeues + " requeues since this worker started." : "");
}

// renderLocked shows why the page shows nothing, and the token form if a
// token would help.
function renderLocked(e) {
  showError("");
  const status = document.getElementById("status");
  setText(status, "Locked");
  status.classList.add("down");
  renderAccess(e);
  renderQueues([], "");
  renderLimiters([]);
  setText(document.getElementById("limiter-count"), "");
  document.getElementById("no-limiters").hidden = true;
  document.getElementById("more").hidden = true;
}

// renderCount says which part of the limiters the page shows.
function renderCount(st) {
  const shown = st.limiters.length;
  const filtered = st.filter !== "";
  let text = "";
  if (st.limiters_total > 0) {
    text = "Showing " + shown + " of " + (filtered ? st.limiters_matched + " matching (" + st.limiters_total + " in all)" : st.limiters_total) +
      (shown < st.limiters_matched ? ", busiest first." : ".");
  }
  setText(document.getElementById("limiter-count"), text);
  const none = document.getElementById("no-limiters");
  none.hidden = shown > 0;
  setText(none, st.limiters_total > 0 ? "No limiter's name holds “" + st.filter + "”." : "No limiter of this worker's rules has been used yet.");
  document.getElementById("more").hidden = shown >= st.limiters_matched || pageLimit >= MAX_PAGE;
}

function renderAccess(e) {
  edit = e;
  const text = document.getElementById("access-text");
  const section = document.getElementById("access");
  if (e.allowed) {
    setText(text, e.by === "token"
      ? "You can change limits (admin token accepted)."
      : "You can change limits (the admin server is on loopback).");
  } else {
    setText(text, e.reason || "Limits are read-only.");
  }
  section.className = "access " + (e.allowed ? "ok" : "readonly");
  document.getElementById("token-form").hidden = !(e.token_required || (e.allowed && e.by === "token"));
}

function renderQueues(queues, err) {
  const qe = document.getElementById("queues-error");
  qe.hidden = !err;
  setText(qe, err || "");
  const rows = queues.map((q) => {
    const name = el("h3", "name", q.queue);
    if (q.paused) name.append(el("span", "tag", "paused"));
    const stats = ["pending", "active", "scheduled", "retry", "archived"].map((k) => {
      const s = stat(k, "q-" + k);
      s.v.textContent = String(q[k]);
      return s.node;
    });
    const row = el("article", "queue" + (q.paused ? " paused" : ""), name, el("div", "stats qstats", ...stats));
    row.dataset.queue = q.queue;
    return row;
  });
  document.getElementById("queues").replaceChildren(...rows);
}

function renderLimiters(limiters) {
  const box = document.getElementById("limiters");
  const seen = new Set();
  let prev = null;
  for (const l of limiters) {
    seen.add(l.name);
    let card = cards.get(l.name);
    if (!card) {
      card = makeCard(l);
      cards.set(l.name, card);
    }
    // Keep the server's order without moving cards that are in place, so
    // that a focused input keeps its focus.
    const want = prev ? prev.root.nextSibling : box.firstChild;
    if (want !== card.root) box.insertBefore(card.root, want);
    updateCard(card, l);
    prev = card;
  }
  for (const [name, card] of cards) {
    if (!seen.has(name)) {
      card.root.remove();
      cards.delete(name);
    }
  }
}

function stat(label, cls) {
  const v = el("span", "v " + cls);
  return { node: el("div", "stat", v, el("span", "k", label)), v };
}

function makeCard(l) {
  const root = el("article", "limiter");
  root.dataset.name = l.name;
  const title = el("h3", "title", el("span", "rule", l.rule));
  if (l.partitioned) {
    title.append(el("span", "sep", " / "), el("span", "partition", l.partition === "" ? "(no value)" : l.partition));
  }
  const c = { root };
  const counts = ["limit", "held", "free", "waiting", "parked"].map((k) => stat(k, "v-" + k));
  [c.limit, c.held, c.free, c.waiting, c.parked] = counts.map((s) => s.v);
  c.fill = el("div", "fill");
  const bar = el("div", "bar", c.fill);
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-label", "utilisation");
  c.bar = bar;
  c.util = el("span", "util");

  const waits = ["wait p50", "wait p99", "parked/min", "lease losses"].map((k, i) => stat(k, ["v-p50", "v-p99", "v-parkedmin", "v-leaselost"][i]));
  [c.p50, c.p99, c.parkedPerMin, c.leaseLost] = waits.map((s) => s.v);
  c.chart = document.createElementNS(SVG, "svg");
  c.chart.setAttribute("class", "chart");
  c.chart.setAttribute("viewBox", "0 0 300 64");
  c.chart.setAttribute("preserveAspectRatio", "none");
  c.chartNote = el("div", "chart-note");
  c.chartMax = el("span", "chart-max");
  c.dots = el("div", "dots");

  c.holders = el("ul", "holders");
  c.noHolders = el("p", "muted small no-holders", "No slot is held.");
  c.readError = el("p", "banner error", "");
  c.readError.hidden = true;

  c.input = el("input", "limit-input");
  c.input.type = "number";
  c.input.min = "1";
  c.input.step = "1";
  c.input.required = true;
  c.input.setAttribute("aria-label", "new limit for " + l.name);
  c.button = el("button", "", "Set limit");
  c.button.type = "submit";
  c.formNote = el("span", "form-note", "");
  c.form = el("form", "limit-form", el("label", "", "New limit "), c.input, c.button, c.formNote);
  c.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setLimit(c, l.name);
  });

  root.append(
    el("header", "card-head", title, c.util),
    el("div", "stats counts", ...counts.map((s) => s.node)),
    bar,
    c.readError,
    el("div", "stats waits", ...waits.map((s) => s.node)),
    el("figure", "wait-chart", el("div", "plot", c.chart, c.dots, c.chartMax, c.chartNote),
      el("figcaption", "legend", el("span", "key p50", "p50"), el("span", "key p99", "p99"),
        "acquire wait per 10 s, last 5 min")),
    el("h4", "", "Holders"),
    c.holders,
    c.noHolders,
    c.form,
  );
  return c;
}

function updateCard(c, l) {
  setText(c.limit, String(l.limit));
  setText(c.held, String(l.held));
  setText(c.free, String(l.free));
  setText(c.waiting, String(l.waiting));
  setText(c.parked, String(l.parked || 0));
  const pct = l.limit > 0 ? Math.round((100 * l.held) / l.limit) : 0;
  c.fill.style.width = Math.min(100, pct) + "%";
  c.bar.className = "bar" + (pct >= 100 ? " full" : pct >= 80 ? " high" : "");
  c.bar.setAttribute("aria-valuenow", String(pct));
  setText(c.util, pct + "% used");
  c.readError.hidden = !l.error;
  setText(c.readError, l.error ? "Reading this limiter failed: " + l.error : "");

  const ev = l.events;
  setText(c.p50, fmtMs(ev.wait_p50_ms));
  setText(c.p99, fmtMs(ev.wait_p99_ms));
  setText(c.parkedPerMin, String(ev.parked_per_minute));
  setText(c.leaseLost, ev.lease_lost + (ev.lease_lost_total > ev.lease_lost ? " (" + ev.lease_lost_total + " total)" : ""));
  c.leaseLost.classList.toggle("bad", ev.lease_lost > 0);
  drawChart(c, ev.series || []);

  const rows = l.holders.map((h) => {
    const li = el("li", "holder",
      el("span", "mono task-id", h.task_id || h.label),
      el("span", "lease", fmtLease(h.lease_left_seconds)),
      el("span", "meta",
        el("span", "task-type", h.task_type), " · ",
        el("span", "mono worker", h.worker), " · weight ",
        el("span", "weight", String(h.weight)), " · fence ",
        el("span", "fence", String(h.fence))));
    li.title = h.label;
    return li;
  });
  c.holders.replaceChildren(...rows);
  c.holders.hidden = rows.length === 0;
  c.noHolders.hidden = rows.length > 0;

  c.input.disabled = !edit.allowed;
  c.button.disabled = !edit.allowed;
  c.form.classList.toggle("readonly", !edit.allowed);
  if (document.activeElement !== c.input && c.input.value === "") c.input.placeholder = String(l.limit);
}

function drawChart(c, series) {
  const W = 300, H = 64, pad = 5;
  const val = (p, key) => p[key + "_ms"];
  const pts = series.filter((p) => val(p, "p99") >= 0);
  const max = Math.max(1, ...pts.map((p) => val(p, "p99")));
  const x = (i) => pad + (series.length > 1 ? (i / (series.length - 1)) * (W - 2 * pad) : 0);
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  const svg = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  const nodes = [svg("line", { x1: 0, x2: W, y1: H - pad, y2: H - pad, class: "axis" })];
  for (const key of ["p99", "p50"]) {
    let d = "";
    series.forEach((p, i) => {
      const v = val(p, key);
      if (v < 0) return;
      const joined = i > 0 && val(series[i - 1], key) >= 0;
      d += (joined ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
    });
    if (d) nodes.push(svg("path", { d: d, class: "line " + key }));
  }
  c.chart.replaceChildren(...nodes);
  // A lone point draws no line: HTML dots mark the points, so that they
  // stay round however the chart is stretched.
  const dots = [];
  for (const key of ["p99", "p50"]) {
    series.forEach((p, i) => {
      const v = val(p, key);
      if (v < 0) return;
      const dot = el("span", "dot " + key);
      dot.style.left = ((100 * x(i)) / W).toFixed(2) + "%";
      dot.style.top = ((100 * y(v)) / H).toFixed(2) + "%";
      dots.push(dot);
    });
  }
  c.dots.replaceChildren(...dots);
  setText(c.chartMax, pts.length ? fmtMs(max) : "");
  setText(c.chartNote, pts.length ? "" : "No task got a slot here in the last 5 minutes.");
}

async function setLimit(c, name) {
  const n = Number(c.input.value);
  if (!Number.isInteger(n) || n < 1) {
    setText(c.formNote, "Enter a whole number of at least 1.");
    return;
  }
  c.button.disabled = true;
  setText(c.formNote, "Saving…");
  try {
    const resp = await fetch("api/limit", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ name: name, limit: n }),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.error || "HTTP " + resp.status);
    setText(c.formNote, "Limit " + body.before + " → " + body.limit + ".");
    c.input.value = "";
  } catch (err) {
    setText(c.formNote, "Not changed: " + err.message);
  }
  c.button.disabled = !edit.allowed;
  poll();
}

document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  if (token) sessionStorage.setItem("slotguard-token", token);
  else sessionStorage.removeItem("slotguard-token");
  poll();
});
let filterTimer = null;
document.getElementById("filter").addEventListener("input", () => {
  pageLimit = PAGE;
  clearTimeout(filterTimer);
  filterTimer = setTimeout(poll, 250);
});
document.getElementById("more").addEventListener("click", () => {
  pageLimit = Math.min(MAX_PAGE, pageLimit + PAGE);
  poll();
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});
poll();
