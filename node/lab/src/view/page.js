// cairn testnet view: draws /api/tree as an SVG block tree (newest on top), refreshes on
// every /api/events event, and shows block details, double spends and reorgs. Vanilla JS,
// no external resources: the page works offline.
"use strict";

const ROW_H = 30, BOX_W = 118, BOX_H = 22, TIP_W = 58, LEFT = 64, TOP = 8, GAP = 26;
// Above this many rows only those near the viewport are drawn.
const VIRTUAL_ROWS = 400;

const state = {
  tree: null, rows: [], expanded: new Set(), selected: null,
  inflight: false, dirty: false, laneX: [], laneW: [],
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const short = (h) => (h || "").slice(0, 10);
const clock = (ms) => new Date(ms).toISOString().slice(11, 23);

function fromParam() {
  const v = $("from").value.trim();
  return v === "" ? "" : "?from=" + encodeURIComponent(v);
}

async function getJson(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

// Coalesces refreshes: at most one request in flight, one more queued.
async function refresh() {
  if (state.inflight) { state.dirty = true; return; }
  state.inflight = true;
  try {
    const fetched = performance.now();
    const tree = await getJson("/api/tree" + fromParam());
    $("tree").dataset.fetchMs = (performance.now() - fetched).toFixed(1);
    state.tree = tree;
    renderNodes(tree);
    layoutRows(tree);
    renderTree();
    renderReorgs(tree);
    refreshConflicts();
    if (events && events.readyState === EventSource.OPEN) showLive();
    if (state.selected) await showBlock(state.selected, false);
  } catch (e) {
    $("connection").textContent = "error: " + e.message;
    $("connection").className = "connection bad";
  } finally {
    state.inflight = false;
    if (state.dirty) { state.dirty = false; refresh(); }
  }
}

// Double spends load on their own: the first look at many blocks reads their bodies, and
// the tree must not wait for that.
const conflictsState = {inflight: false, dirty: false};
async function refreshConflicts() {
  if (conflictsState.inflight) { conflictsState.dirty = true; return; }
  conflictsState.inflight = true;
  try {
    renderConflicts(await getJson("/api/conflicts" + fromParam()));
  } catch (e) {
    $("conflicts-body").textContent = e.message;
  } finally {
    conflictsState.inflight = false;
    if (conflictsState.dirty) { conflictsState.dirty = false; refreshConflicts(); }
  }
}

function renderNodes(tree) {
  const bannedBy = new Map();
  for (const n of tree.nodes) for (const b of n.banned || []) {
    if (!bannedBy.has(b)) bannedBy.set(b, []);
    bannedBy.get(b).push(n.name);
  }
  $("nodes").innerHTML = tree.nodes.map((n) => {
    const by = bannedBy.get(n.name) || [];
    const byz = n.byzantine ? ` <span class="byzantine" title="--byzantine ${esc(n.byzantine)}">byzantine: ${esc(n.byzantine)}</span>` : "";
    const ban = by.length ? ` <span class="banned">banned by ${by.map(esc).join(", ")}</span>` : "";
    return `<span class="node ${n.up ? "up" : "down"}" data-node="${esc(n.name)}"` +
      ` data-banned-by="${by.map(esc).join(" ")}"${n.byzantine ? ` data-byzantine="${esc(n.byzantine)}"` : ""}>${esc(n.name)} ` +
      `h=${n.height ?? "?"} ${short(n.tip)} <span class="${n.live ? "live" : "polling"}">${n.up ? (n.live ? "●" : "◌") : "down"}</span>${byz}${ban}</span>`;
  }).join("");
}

// Rows, newest first: either one height (all its blocks) or one folded run.
function layoutRows(tree) {
  const byHeight = new Map();
  for (const b of tree.blocks) {
    if (!byHeight.has(b.height)) byHeight.set(b.height, []);
    byHeight.get(b.height).push(b);
  }
  const foldAt = new Map();
  for (const f of tree.folds) if (!state.expanded.has(f.bottom)) foldAt.set(f.top_height, f);
  const heights = [...byHeight.keys()].sort((a, b) => b - a);
  const rows = [];
  for (let i = 0; i < heights.length; i++) {
    const h = heights[i];
    const f = foldAt.get(h);
    if (f) {
      rows.push({fold: f});
      while (i + 1 < heights.length && heights[i + 1] >= f.bottom_height) i++;
      continue;
    }
    rows.push({height: h, blocks: byHeight.get(h).sort((a, b) => a.lane - b.lane)});
  }
  state.rows = rows;
  // Lane widths leave room for the tip labels of the blocks in them.
  const tipsAt = new Map();
  for (const n of tree.nodes) if (n.tip) tipsAt.set(n.tip, (tipsAt.get(n.tip) || 0) + 1);
  const lanes = Math.max(tree.lanes, 1);
  const width = new Array(lanes).fill(BOX_W + GAP);
  for (const b of tree.blocks) {
    const t = tipsAt.get(b.hash) || 0;
    width[b.lane] = Math.max(width[b.lane], BOX_W + GAP + t * (TIP_W + 4));
  }
  state.laneW = width;
  state.laneX = [];
  let x = LEFT;
  for (let l = 0; l < lanes; l++) { state.laneX.push(x); x += width[l]; }
  state.width = x + 20;
}

function visibleRange() {
  const n = state.rows.length;
  if (n <= VIRTUAL_ROWS) return [0, n];
  const pane = $("tree-pane");
  const first = Math.max(0, Math.floor((pane.scrollTop - TOP) / ROW_H) - 40);
  const last = Math.min(n, first + Math.ceil(pane.clientHeight / ROW_H) + 80);
  return [first, last];
}

function renderTree() {
  const tree = state.tree;
  if (!tree) return;
  const started = performance.now();
  const svg = $("tree");
  const up = tree.nodes.filter((n) => n.up).map((n) => n.name);
  const rowOf = new Map(), foldOf = new Map();
  state.rows.forEach((r, i) => {
    if (r.fold) foldOf.set(r.fold.top, i);
    else for (const b of r.blocks) rowOf.set(b.hash, i);
  });
  const byHash = new Map(tree.blocks.map((b) => [b.hash, b]));
  const y = (i) => TOP + i * ROW_H;
  const [first, last] = visibleRange();
  const parts = [];
  const edges = [];
  const tips = new Map();
  for (const n of tree.nodes) if (n.tip) { if (!tips.has(n.tip)) tips.set(n.tip, []); tips.get(n.tip).push(n); }
  for (let i = first; i < last; i++) {
    const r = state.rows[i];
    if (r.fold) {
      const f = r.fold, x = state.laneX[0];
      parts.push(`<g class="fold" data-fold="${esc(f.bottom)}"><title>heights ${f.bottom_height}–${f.top_height}, on every node's chain</title>` +
        `<rect x="${x}" y="${y(i)}" width="${BOX_W}" height="${BOX_H}"></rect>` +
        `<text x="${x + 8}" y="${y(i) + 15}">${f.count} blocks</text></g>`);
      parts.push(`<text class="height" x="4" y="${y(i) + 15}">${f.bottom_height}–${f.top_height}</text>`);
      const below = byHash.get(f.bottom) && byHash.get(byHash.get(f.bottom).parent);
      if (below && rowOf.has(below.hash)) edges.push(edge(x, y(i), state.laneX[below.lane], y(rowOf.get(below.hash)), true));
      continue;
    }
    parts.push(`<text class="height" x="4" y="${y(i) + 15}">${r.height}</text>`);
    for (const b of r.blocks) {
      const x = state.laneX[b.lane] ?? LEFT;
      const everyone = up.length > 0 && up.every((n) => b.active_on.includes(n));
      const cls = "block" + (everyone ? " everyone" : "") + (state.selected === b.hash ? " selected" : "");
      const txs = b.txs == null ? "hdr" : b.txs + "tx";
      parts.push(`<g class="${cls}" data-block="${b.hash}" data-status="${b.status}" data-height="${b.height}">` +
        `<title>${b.hash}\nheight ${b.height}\nactive on: ${b.active_on.join(" ") || "—"}\nknown by: ${b.known_by.join(" ")}` +
        (b.invalid_on.length ? `\ninvalid on: ${b.invalid_on.join(" ")}` : "") + `</title>` +
        `<rect x="${x}" y="${y(i)}" width="${BOX_W}" height="${BOX_H}"></rect>` +
        `<text x="${x + 6}" y="${y(i) + 15}">${short(b.hash)} ${txs}${b.status === "invalid" ? " ✗" : ""}</text></g>`);
      let tx = x + BOX_W + 6;
      for (const n of tips.get(b.hash) || []) {
        parts.push(`<g class="tip${n.up ? "" : " down"}" data-tip="${esc(n.name)}" data-hash="${b.hash}">` +
          `<rect x="${tx}" y="${y(i) + 1}" width="${TIP_W}" height="${BOX_H - 2}"></rect>` +
          `<text x="${tx + 6}" y="${y(i) + 15}">${esc(n.name)}</text></g>`);
        tx += TIP_W + 4;
      }
      const parent = byHash.get(b.parent);
      if (parent && rowOf.has(parent.hash)) {
        edges.push(edge(x, y(i), state.laneX[parent.lane], y(rowOf.get(parent.hash)), b.status === "active"));
      } else if (foldOf.has(b.parent)) {
        edges.push(edge(x, y(i), state.laneX[0], y(foldOf.get(b.parent)), true));
      }
    }
  }
  // Tips whose block is not in the range drawn (a node far behind) are still labelled.
  const drawnTips = new Set();
  for (const r of state.rows) if (!r.fold) for (const b of r.blocks) drawnTips.add(b.hash);
  let extra = 0;
  for (const n of tree.nodes) {
    if (!n.tip || drawnTips.has(n.tip)) continue;
    parts.push(`<g class="tip${n.up ? "" : " down"}" data-tip="${esc(n.name)}" data-hash="${esc(n.tip)}">` +
      `<rect x="${LEFT + extra * (TIP_W + 40)}" y="${y(state.rows.length) + 4}" width="${TIP_W + 36}" height="${BOX_H - 2}"></rect>` +
      `<text x="${LEFT + extra * (TIP_W + 40) + 6}" y="${y(state.rows.length) + 18}">${esc(n.name)} below</text></g>`);
    extra++;
  }
  svg.setAttribute("width", state.width);
  svg.setAttribute("height", y(state.rows.length) + 40);
  svg.innerHTML = edges.join("") + parts.join("");
  // What the last drawing cost, for measuring the page at scale.
  svg.dataset.rows = state.rows.length;
  svg.dataset.drawnRows = last - first;
  svg.dataset.elements = svg.childElementCount;
  svg.dataset.renderMs = (performance.now() - started).toFixed(1);
}

function edge(x, yTop, px, yParent, active) {
  const x1 = x + BOX_W / 2, y1 = yTop + BOX_H, x2 = px + BOX_W / 2, y2 = yParent;
  const mid = (y1 + y2) / 2;
  return `<path class="edge${active ? " active" : ""}" d="M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}"></path>`;
}

function renderReorgs(tree) {
  $("stale-count").textContent = `${tree.stale} stale block${tree.stale === 1 ? "" : "s"} at heights ≥ ${tree.from}`;
  $("reorg-list").innerHTML = tree.reorgs.slice().reverse().map((r) =>
    `<li>${clock(r.time_ms)} <b>${esc(r.node)}</b> depth ${r.depth}: <a data-goto="${esc(r.from)}">${short(r.from)}</a> → <a data-goto="${esc(r.to)}">${short(r.to)}</a></li>`
  ).join("") || `<li class="muted">none yet</li>`;
}

function renderConflicts(list) {
  if (!list.length) { $("conflicts-body").innerHTML = `<span class="muted">None seen.</span>`; return; }
  $("conflicts-body").innerHTML = list.map((c) => {
    const nodes = Object.keys(c.txs[0].on);
    return `<div class="conflict" data-outpoint="${esc(c.outpoint)}"><div class="mono">${esc(c.outpoint)}</div><table><tr><th>tx</th>` +
      nodes.map((n) => `<th>${esc(n)}</th>`).join("") + `</tr>` +
      c.txs.map((t) => `<tr><td class="mono" title="${esc(t.txid)}">${short(t.txid)}</td>` +
        nodes.map((n) => `<td class="presence-${t.on[n]}">${t.on[n]}</td>`).join("") + `</tr>`).join("") +
      `</table></div>`;
  }).join("");
}

const pct = (p) => p >= 0.001 ? (100 * p).toFixed(2) + " %" : p.toExponential(2);

async function showBlock(hash, scroll) {
  state.selected = hash;
  let d;
  try { d = await getJson("/api/block/" + hash); } catch (e) { $("detail-body").textContent = e.message; return; }
  const seen = Object.entries(d.first_seen);
  const t0 = seen.length ? Math.min(...seen.map(([, t]) => t)) : 0;
  const span = Math.max(1, ...seen.map(([, t]) => t - t0));
  const nodes = Object.keys(d.confirmations);
  $("detail-body").innerHTML =
    `<table>` +
    `<tr><th>hash</th><td class="mono">${d.hash}</td></tr>` +
    `<tr><th>parent</th><td class="mono"><a data-goto="${d.parent}">${d.parent}</a></td></tr>` +
    `<tr><th>height</th><td>${d.height}</td></tr>` +
    `<tr><th>time</th><td>${new Date(d.time * 1000).toISOString()}</td></tr>` +
    `<tr><th>bits</th><td class="mono">${esc(d.bits ?? "—")}</td></tr>` +
    `<tr><th>nonce</th><td>${d.nonce ?? "—"}</td></tr></table>` +
    `<h2>Per node</h2><table class="waterfall"><tr><th>node</th><th>status</th><th>conf</th><th>first seen</th></tr>` +
    nodes.map((n) => {
      const t = d.first_seen[n];
      const bar = t == null ? `<span class="muted">${d.status[n] ? "before the view" : "—"}</span>`
        : `<div class="lane"><div class="bar" style="width:${(2 + 78 * (t - t0) / span).toFixed(1)}%"></div><span class="muted">+${t - t0} ms` +
          `${d.first_seen_by_view.includes(n) ? " (view's poll)" : ""}</span></div>`;
      return `<tr data-node="${esc(n)}"><td>${esc(n)}</td><td>${d.status[n] ?? "unknown"}</td><td>${d.confirmations[n]}</td><td>${bar}</td></tr>`;
    }).join("") + `</table>` +
    `<h2>Reversal odds (Nakamoto §11, z = ${Math.max(0, ...Object.values(d.confirmations))})</h2><table>` +
    Object.entries(d.reversal_probability).map(([q, p]) => `<tr><th>attacker q = ${q}</th><td>${pct(p)}</td></tr>`).join("") + `</table>` +
    `<h2>${d.txids.length} transactions</h2><div class="mono">${d.txids.map((t) => `<div>${t}</div>`).join("")}</div>`;
  if (scroll) renderTree();
}

$("tree").addEventListener("click", (ev) => {
  const fold = ev.target.closest("[data-fold]");
  if (fold) { state.expanded.add(fold.dataset.fold); layoutRows(state.tree); renderTree(); return; }
  const block = ev.target.closest("[data-block]");
  if (block) showBlock(block.dataset.block, true);
});
document.body.addEventListener("click", (ev) => {
  const a = ev.target.closest("[data-goto]");
  if (a) showBlock(a.dataset.goto, true);
});
$("from").addEventListener("change", refresh);
let scrollPending = false;
$("tree-pane").addEventListener("scroll", () => {
  if (state.rows.length <= VIRTUAL_ROWS || scrollPending) return;
  scrollPending = true;
  requestAnimationFrame(() => { scrollPending = false; renderTree(); });
});

let events = null;
const showLive = () => { $("connection").textContent = "live"; $("connection").className = "connection ok"; };

function connect() {
  events = new EventSource("/api/events");
  events.onopen = () => { showLive(); refresh(); };
  events.onerror = () => { $("connection").textContent = "reconnecting…"; $("connection").className = "connection bad"; };
  for (const name of ["tip", "block", "node", "mempool", "bans"]) events.addEventListener(name, refresh);
}

// `/?from=H` opens the page at that height.
const initialFrom = new URLSearchParams(location.search).get("from");
if (initialFrom !== null) $("from").value = initialFrom;
connect();
refresh();
// A safety net for anything no event announces (a status change deep in the tree).
setInterval(refresh, 5000);
