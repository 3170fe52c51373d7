// Tandem's status page: every channel and archive pair at a glance, live.
// Reads GET /api/v1/status, listens to GET /api/v1/events/stream (the
// session cookie signs both), and redraws without reloading.
"use strict";

const app = document.getElementById("app");
const liveBadge = document.getElementById("live");
const clockEl = document.getElementById("clock");
const HOUR = 3600 * 1000;
const SPANS = [[60, "1 h"], [10, "10 min"], [2, "2 min"]];
const state = { status: null, skew: 0, events: {}, player: null, playing: null, span: 60 };

// Elements from data, never from HTML strings.
function h(tag, attrs, ...children) {
  const svg = ["svg", "rect", "line", "text", "g", "title", "circle"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function serverNow() { return Date.now() + state.skew; }

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (serverNow() - Date.parse(iso)) / 1000);
  if (s < 120) return `${s.toFixed(0)} s ago`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function route() {
  const m = location.hash.match(/^#channel\/([A-Za-z0-9._~-]+)$/);
  return m ? { channel: m[1] } : {};
}

async function refresh() {
  let res;
  try {
    res = await fetch("/api/v1/status", { credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    liveBadge.textContent = "server unreachable";
    liveBadge.className = "live off";
    return;
  }
  if (res.status === 401) { location.reload(); return; }
  if (!res.ok) return;
  const st = await res.json();
  state.skew = Date.parse(st.time) - Date.now();
  state.status = st;
  render();
}

let pending = null;
function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 150);
}

function inputBadge(ch, i) {
  const since = i.last_advance ? `advanced ${ago(i.last_advance)}` : "no playlist yet";
  return h("span", {
    class: "input", "data-channel": ch.id, "data-pipeline": i.pipeline, "data-state": i.state,
    "data-last-advance": i.last_advance || "",
    title: `pipeline ${i.pipeline}: ${i.state}; last write ${ago(i.last_write)}`,
  }, `input ${i.pipeline} · ${i.state} · `, h("span", { class: "age" }, since));
}

function activeLabel(ch) {
  const p = ch.active_pipeline;
  return h("span", { class: "active", "data-active": p === null ? "" : p },
    "output on ", p === null ? h("b", {}, "—") : h("b", { class: `p${p}` }, `pipeline ${p}`));
}

// The last hour, one row per rendition: who served each stretch, switches
// as vertical lines, gaps as red ticks.
function timeline(ch) {
  const tl = ch.timeline;
  const W = 1000, ROW = 16, TOP = 4, AXIS = 14;
  const rows = tl ? tl.renditions : [];
  const H = TOP + Math.max(rows.length, 1) * (ROW + 4) + AXIS;
  const svg = h("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, "data-channel": ch.id, role: "img",
    "aria-label": `${ch.id}: which pipeline served the output in the last hour` });
  if (!tl || rows.length === 0) {
    svg.append(h("rect", { class: "s-none", x: 0, y: TOP, width: W, height: ROW }));
    svg.append(h("text", { x: 6, y: TOP + 12 }, "no output yet"));
    return svg;
  }
  const t1 = Date.parse(tl.to), t0 = Math.max(Date.parse(tl.from), t1 - state.span * 60000);
  const x = t => Math.max(0, Math.min(W, ((Date.parse(t) - t0) / (t1 - t0)) * W));
  rows.forEach((r, n) => {
    const y = TOP + n * (ROW + 4);
    const g = h("g", { "data-rendition": r.rendition });
    for (const s of r.stretches) {
      const kind = s.ended ? "s-ended" : s.pipeline === 0 ? "s-p0" : s.pipeline === 1 ? "s-p1" : "s-none";
      g.append(h("rect", { class: `stretch ${kind}`, x: x(s.from), y, width: Math.max(0.5, x(s.to) - x(s.from)), height: ROW,
        "data-pipeline": s.pipeline === null ? "" : s.pipeline },
        h("title", {}, `${s.ended ? "ended" : s.pipeline === null ? "no output" : "pipeline " + s.pipeline}: ${s.from} – ${s.to}`)));
    }
    for (const sw of r.switches) {
      g.append(h("line", { class: "switch", x1: x(sw.time), x2: x(sw.time), y1: y - 2, y2: y + ROW + 2,
        "data-time": sw.time, "data-to": sw.to, "data-reason": sw.reason },
        h("title", {}, `switch to pipeline ${sw.to} (${sw.reason})${sw.discontinuity ? ", discontinuity" : ""} at ${sw.time}`)));
    }
    for (const gap of r.gaps) {
      g.append(h("line", { class: "gap", x1: x(gap.time), x2: x(gap.time), y1: y, y2: y + ROW },
        h("title", {}, `segment missing from both pipelines at ${gap.time}`)));
    }
    for (const reset of r.resets || []) {
      g.append(h("line", { class: "reset", x1: x(reset.time), x2: x(reset.time), y1: y - 2, y2: y + ROW + 2 },
        h("title", {}, `output reset (a fresh start) at ${reset.time}`)));
    }
    if (rows.length > 1) g.append(h("text", { class: "rendition", x: 4, y: y + 12 }, r.rendition));
    svg.append(g);
  });
  const ay = H - 3;
  svg.append(h("text", { x: 0, y: ay }, `−${state.span} min`));
  svg.append(h("text", { x: W / 2 - 20, y: ay }, `−${state.span / 2} min`));
  svg.append(h("text", { x: W - 24, y: ay }, "now"));
  return svg;
}

function legend() {
  const item = (c, t) => h("span", {}, h("i", { class: `sw ${c}` }), t);
  const spans = SPANS.map(([m, label]) => h("button", { type: "button", class: "span", "data-span": m,
    "aria-pressed": state.span === m ? "true" : "false" }, label));
  return h("div", { class: "legend" }, item("s-p0", "pipeline 0"), item("s-p1", "pipeline 1"),
    item("s-ended", "ended"), item("s-none", "no output"), item("s-gap", "gap"), item("s-switch", "switch"), item("s-reset", "reset"),
    h("span", { class: "spans" }, spans));
}

// The timeline's span buttons (one listener for every card).
app.addEventListener("click", ev => {
  const b = ev.target.closest("button.span");
  if (!b) return;
  state.span = Number(b.dataset.span);
  render();
});

// A Smooth publishing point: both pushes' states and what the merge did.
function pointRow(ch, pt) {
  const c = pt.counters;
  return h("div", { class: "row point", "data-channel": ch.id, "data-point": pt.name },
    h("a", { href: pt.manifest }, `${pt.name}.isml`),
    pt.inputs.map((st, p) => h("span", { class: "input", "data-pipeline": p, "data-state": st }, `push ${p} · ${st}`)),
    h("span", { class: "muted" },
      `${pt.tracks} tracks${pt.event ? ` · Events(${pt.event})` : ""}${pt.ended ? " · ended" : ""} · ` +
      `received ${c.received[0]}/${c.received[1]} · duplicates ${c.duplicates} · fills ${c.fills} · gaps ${c.gaps} · restarts ${c.restarts}`));
}

function channelCard(ch, linked) {
  const points = ch.publishing_points || [];
  return h("section", { class: "card channel", "data-channel": ch.id },
    h("h3", {}, linked ? h("a", { href: `#channel/${ch.id}` }, ch.id) : ch.id,
      h("a", { class: "muted", href: ch.output }, ch.output)),
    h("div", { class: "row" }, ch.inputs.map(i => inputBadge(ch, i)), activeLabel(ch)),
    timeline(ch), legend(),
    points.length ? h("div", { class: "points" }, h("h4", {}, "Smooth publishing points"), points.map(pt => pointRow(ch, pt))) : null);
}

function archiveCard(a) {
  const grid = h("div", { class: "grid", "data-archive": a.id },
    h("span", { class: "label" }, "index"), h("span", { class: "label" }, "primary"), h("span", { class: "label" }, "backup"));
  for (const ix of a.indexes) {
    grid.append(h("span", { class: "label", title: `index ${ix.index}` }, ""));
    grid.append(h("span", { class: `cell-${ix.primary}`, "data-index": ix.index, "data-side": "primary", "data-state": ix.primary, title: `index ${ix.index}, primary: ${ix.primary}` }));
    grid.append(h("span", { class: `cell-${ix.backup}`, "data-index": ix.index, "data-side": "backup", "data-state": ix.backup, title: `index ${ix.index}, backup: ${ix.backup}` }));
  }
  return h("section", { class: "card archive", "data-archive": a.id },
    h("h3", {}, a.id, h("span", { class: "muted" },
      `${a.indexes.length} indexes checked · ${a.uncovered} whole in neither bucket`)),
    a.indexes.length ? grid : h("p", { class: "muted" }, "no archive files yet"));
}

function udpCard(f) {
  return h("section", { class: "card udp", "data-udp": f.id },
    h("h3", {}, f.id, h("span", { class: "muted" },
      `${f.mode} · ${f.state} · ${f.output_packets} packets out · ${f.output_lost} lost · ${Math.round(f.output_bitrate_bps / 1000)} kbit/s`)),
    h("p", {}, ...f.legs.map(([addr, up], i) =>
      h("span", { class: up ? "cell-whole" : "cell-missing", "data-leg": i, title: up ? "delivering" : "not delivering" }, `leg ${i} ${addr} ${up ? "up" : "down"} `))));
}

function eventRow(e) {
  const what = [e.pipeline !== undefined ? `pipeline ${e.pipeline}` : null,
    e.to !== undefined ? `→ ${e.to}` : null, e.reason, e.uri, e.media_sequence !== undefined ? `#${e.media_sequence}` : null]
    .filter(Boolean).join(" ");
  return h("tr", { "data-kind": e.kind }, h("td", {}, e.time), h("td", {}, e.kind), h("td", {}, e.rendition || ""), h("td", {}, what));
}

async function loadEvents(id) {
  const res = await fetch(`/api/v1/channels/${encodeURIComponent(id)}/events`, { credentials: "same-origin" });
  if (!res.ok) return;
  const body = await res.json();
  state.events[id] = body.events.slice(-200);
  render();
}

function play(ch, video) {
  const url = ch.playlist;
  if (!url || state.playing === url) return;
  if (state.player) state.player.destroy();
  state.playing = url;
  if (window.Hls && Hls.isSupported()) {
    state.player = new Hls({ liveSyncDurationCount: 3 });
    state.player.loadSource(url);
    state.player.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
  }
  video.play().catch(() => {});
}

let video = null;
function channelPage(id) {
  const ch = state.status.channels.find(c => c.id === id);
  if (!ch) return [h("p", {}, `No channel ${id}. `, h("a", { href: "#" }, "All channels"))];
  if (!state.events[id]) { state.events[id] = []; loadEvents(id); }
  if (!video || video.dataset.channel !== id) {
    if (state.player) { state.player.destroy(); state.player = null; state.playing = null; }
    video = h("video", { controls: true, muted: true, playsinline: true, "data-channel": id });
    video.muted = true;
  }
  play(ch, video);
  const events = state.events[id].slice().reverse();
  return [
    h("p", {}, h("a", { href: "#" }, "← all channels")),
    channelCard(ch, false),
    h("section", { class: "card" }, h("h3", {}, "Output"),
      ch.playlist ? video : h("p", { class: "muted" }, "nothing published yet")),
    h("section", { class: "card" }, h("h3", {}, "Events"),
      h("table", { class: "events" }, h("thead", {}, h("tr", {}, ["time", "kind", "rendition", "what"].map(t => h("th", {}, t)))),
        h("tbody", {}, events.map(eventRow)))),
  ];
}

function overview() {
  const st = state.status;
  return [
    h("h2", {}, `Channels (${st.channels.length})`),
    st.channels.length ? st.channels.map(c => channelCard(c, true)) : h("p", { class: "muted" }, "No channels."),
    h("h2", {}, `Archive pairs (${st.archives.length})`),
    st.archives.length ? st.archives.map(archiveCard) : h("p", { class: "muted" }, "No archive pairs."),
    h("h2", {}, `UDP flows (${(st.udp || []).length})`),
    (st.udp || []).length ? st.udp.map(udpCard) : h("p", { class: "muted" }, "No UDP flows."),
  ];
}

function render() {
  if (!state.status) return;
  const r = route();
  const view = r.channel ? channelPage(r.channel) : overview();
  // Keep the playing video element: replace everything around it.
  app.replaceChildren(...view.flat());
  clockEl.textContent = new Date(serverNow()).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function tickAges() {
  for (const el of document.querySelectorAll(".input[data-last-advance]")) {
    const t = el.getAttribute("data-last-advance");
    const age = el.querySelector(".age");
    if (age && t) age.textContent = `advanced ${ago(t)}`;
  }
  clockEl.textContent = new Date(serverNow()).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function listen() {
  const es = new EventSource("/api/v1/events/stream");
  es.onopen = () => { liveBadge.textContent = "live"; liveBadge.className = "live on"; refreshSoon(); };
  es.onerror = () => { liveBadge.textContent = "reconnecting…"; liveBadge.className = "live off"; };
  es.onmessage = msg => {
    let e;
    try { e = JSON.parse(msg.data); } catch { return; }
    if (e.channel && state.events[e.channel]) {
      state.events[e.channel].push(e);
      if (state.events[e.channel].length > 200) state.events[e.channel].shift();
    }
    refreshSoon();
  };
  es.addEventListener("lagged", refreshSoon);
}

window.addEventListener("hashchange", render);
refresh();
listen();
setInterval(tickAges, 1000);
// Input states also change by silence alone, which raises no event.
setInterval(refresh, 2000);
