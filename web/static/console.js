// console.js: the operator console (/console: every live room; /console/{id}: one room).
//
// Each room is a compact table of its participants (see "participant table"), problems first, sortable, with
// a participant's full charts on demand, so that 86 classrooms stay readable. Polls the API (config.api) every config.pollMs, keeps config.historyMs of figures per participant in the
// page (TaphuanCharts.Series) and redraws. Levels per participant: "bad" (red) when packet loss is over 15 %
// or no media flowed for 10 s; "warn" (amber) when loss is over 5 %, RTT over 400 ms, or reconnecting;
// "ok" otherwise. A room takes the level of its worst participant.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("console-config").textContent);
  const T = JSON.parse(document.getElementById("console-text").textContent);
  const root = document.getElementById("console");
  const Charts = window.TaphuanCharts;
  const roomMode = cfg.mode === "room";

  const LOSS_WARN = 5;       // %
  const LOSS_BAD = 15;       // %
  const RTT_WARN = 400;      // ms
  const NO_MEDIA_MS = 10000;
  const COLORS = {up: "#1463c4", down: "#178a4a", rtt: "#7a4fd1", jitter: "#c2410c",
                  warn: "#dc9a00", bad: "#d92d20"};
  const LEVEL_RANK = {ok: 0, warn: 1, bad: 2};
  // The recorder (role "recorder") is not a person: the API leaves it out and says `recording`; an older
  // answer that still lists it is filtered here too.
  const people = (room) => room.participants.filter((p) => p.role !== "recorder");

  const history = new Map();   // "meeting/participant" -> figures
  let timer = null;
  let failures = 0;

  // ------------------------------------------------------------------------------ small helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  const num = (v, d) => Charts.formatNumber(v, d);
  const pct = (v) => (v === null || v === undefined ? "—" : num(v, v < 10 ? 1 : 0) + " %");
  const ms = (v) => (v === null || v === undefined ? "—" : num(v, v < 10 ? 1 : 0) + " ms");

  function roleName(role) { return T["role." + role] || role; }

  // A presenter who does not share the screen has its screen source muted: that is no news to an operator.
  const shownMuted = (p) => p.muted.filter((s) => s !== "screen");
  const shownProducers = (p) => p.producers.filter((s) => !(s.source === "screen" && s.muted))
    .sort((a, b) => ["camera", "screen", "mic"].indexOf(a.source) - ["camera", "screen", "mic"].indexOf(b.source));

  // upDown: "↑ 412 ↓ 1 250 kbit/s", both in the unit of the larger figure.
  function upDown(up, down) {
    const top = Math.max(up, down);
    const [div, unit] = top >= 1e6 ? [1e6, "Mbit/s"] : [1e3, "kbit/s"];
    const digits = div === 1e6 ? 1 : 0;
    return "↑ " + num(up / div, digits) + "  ↓ " + num(down / div, digits) + " " + unit;
  }

  // spanFor: the charts show the time since the participant appeared, at least one minute, at most the history.
  function spanFor(h, now) { return Math.min(cfg.historyMs, Math.max(60000, now - h.firstSeen)); }

  function clock(d) {
    const lang = document.documentElement.lang === "vi" ? "vi-VN" : "en-GB";
    return d.toLocaleTimeString(lang, {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  }

  // ------------------------------------------------------------------------------ figures

  function figures(key, now) {
    let h = history.get(key);
    if (!h) {
      const span = cfg.historyMs;
      h = {up: new Charts.Series(span), down: new Charts.Series(span), lossUp: new Charts.Series(span),
           lossDown: new Charts.Series(span), rtt: new Charts.Series(span), jitter: new Charts.Series(span),
           firstSeen: now, lastMedia: null, reconnectingSince: null, prev: null, seen: now};
      history.set(key, h);
    }
    h.seen = now;
    return h;
  }

  // record: add one poll's figures of a participant; returns what the row shows.
  function record(room, p, now) {
    const h = figures(room.meeting_id + "/" + p.id, now);
    const packets = p.producers.reduce((a, s) => a + s.packets, 0);
    const lost = p.producers.reduce((a, s) => a + s.packets_lost, 0);
    let lossUp = null;
    if (h.prev && p.producers.length) {
      const dp = packets - h.prev.packets;
      const dl = lost - h.prev.lost;
      if (dp >= 0 && dl >= 0 && dp + dl > 0) lossUp = (100 * dl) / (dp + dl);
      else if (dp >= 0 && dl >= 0) lossUp = 0;
    }
    h.prev = {packets, lost};
    const r = p.receive;
    const lossDown = r.fraction_lost === null ? null : r.fraction_lost * 100;
    const rtt = r.rtt === null ? null : r.rtt * 1000;
    const jitter = r.jitter === null ? null : r.jitter * 1000;
    const connected = p.state === "connected";
    h.up.push(now, connected ? p.publish_bitrate : null);
    h.down.push(now, connected ? r.bitrate : null);
    h.lossUp.push(now, connected ? lossUp : null);
    h.lossDown.push(now, connected ? lossDown : null);
    h.rtt.push(now, connected ? rtt : null);
    h.jitter.push(now, connected ? jitter : null);
    const media = p.publish_bitrate + r.bitrate;
    if (media > 0 && connected) h.lastMedia = now;
    if (!connected) {
      if (h.reconnectingSince === null) h.reconnectingSince = now;
    } else if (h.reconnectingSince !== null) {
      h.reconnectingSince = null;
      h.lastMedia = now;  // back: ten seconds for media to flow again
    }

    const loss = connected ? Math.max(lossUp || 0, lossDown || 0) : 0;
    const quiet = now - (h.lastMedia === null ? h.firstSeen : h.lastMedia);
    const reasons = [];
    let level = "ok";
    const raise = (to, why) => {
      if (LEVEL_RANK[to] > LEVEL_RANK[level]) level = to;
      if (why) reasons.push(why);
    };
    if (!connected) {
      // The state tag already says "reconnecting"; after 10 s it is also a loss of media.
      if (now - h.reconnectingSince >= NO_MEDIA_MS) raise("bad", T.noMedia);
      else raise("warn", null);
    } else if (quiet >= NO_MEDIA_MS) {
      raise("bad", T.noMedia);
    }
    if (loss > LOSS_BAD) raise("bad", T.loss + " " + pct(loss));
    else if (loss > LOSS_WARN) raise("warn", T.loss + " " + pct(loss));
    if (connected && rtt !== null && rtt > RTT_WARN) raise("warn", T.rtt + " " + ms(rtt));
    if (!connected) return {h, level, reasons, media: 0, up: 0, down: 0, loss, lossUp: null, lossDown: null,
                            rtt: null, jitter: null};
    return {h, level, reasons, media, up: p.publish_bitrate, down: r.bitrate, loss, lossUp, lossDown, rtt, jitter};
  }

  function forget(now) {
    for (const [key, h] of history) if (h.seen !== now) history.delete(key);
  }

  // ------------------------------------------------------------------------------ charts

  const METRICS = [
    {key: "bitrate", label: () => T.bitrate},
    {key: "loss", label: () => T.loss},
    {key: "rtt", label: () => T.rtt},
    {key: "jitter", label: () => T.jitter},
  ];

  function chartSpec(metric, f) {
    const h = f.h;
    switch (metric) {
      case "bitrate":
        return {series: [{data: h.up, color: COLORS.up}, {data: h.down, color: COLORS.down}],
                opts: {minMax: 50000, format: Charts.formatBitrate},
                value: upDown(f.up, f.down), level: f.level === "bad" && f.media === 0 ? "bad" : "ok"};
      case "loss":
        return {series: [{data: h.lossUp, color: COLORS.up}, {data: h.lossDown, color: COLORS.down}],
                opts: {minMax: 10, format: (v) => num(v, 0) + " %",
                       thresholds: [{value: LOSS_WARN, color: COLORS.warn}, {value: LOSS_BAD, color: COLORS.bad}]},
                value: f.lossUp === null && f.lossDown === null ? "—" : pct(f.loss),
                level: f.loss > LOSS_BAD ? "bad" : f.loss > LOSS_WARN ? "warn" : "ok"};
      case "rtt":
        return {series: [{data: h.rtt, color: COLORS.rtt}],
                opts: {minMax: 100, format: (v) => num(v, 0) + " ms",
                       thresholds: [{value: RTT_WARN, color: COLORS.warn}]},
                value: ms(f.rtt), level: f.rtt !== null && f.rtt > RTT_WARN ? "warn" : "ok"};
      default:
        return {series: [{data: h.jitter, color: COLORS.jitter}],
                opts: {minMax: 20, format: (v) => num(v, 0) + " ms"},
                value: ms(f.jitter), level: "ok"};
    }
  }

  // ------------------------------------------------------------------------------ participant table
  //
  // One compact row per participant (name and tags, unit, state, audio-only, bitrate, loss, RTT, an SVG
  // sparkline of the bitrate), problems first; a header click sorts by that column (again: the other way);
  // a row click (or Enter) opens its full charts below it, drawn only while open. Each participant is one
  // <tbody> (its row and its charts row), so sorting moves both together.

  const COLUMNS = ["name", "unit", "state", "audio", "bitrate", "loss", "rtt", "spark"];
  const SORTABLE = new Set(["name", "unit", "state", "audio", "bitrate", "loss", "rtt"]);
  const sorting = {key: "state", dir: -1};   // problems first
  const open = new Set();                      // "meeting/participant" whose charts are shown
  const SPARK_W = 120;
  const SPARK_H = 26;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // problem: how much a row needs the operator (higher first): level, reconnecting, audio-only.
  function problem(p, f) {
    return LEVEL_RANK[f.level] * 4 + (p.state !== "connected" ? 2 : 0) + (p.audio_only ? 1 : 0);
  }

  function sortValue(key, p, f) {
    switch (key) {
      case "name": return p.name.toLocaleLowerCase();
      case "unit": return (p.unit || "").toLocaleLowerCase();
      case "state": return problem(p, f) * 1000 + (f.loss || 0);
      case "audio": return p.audio_only ? 1 : 0;
      case "bitrate": return f.media;
      case "loss": return f.loss || 0;
      case "rtt": return f.rtt === null ? -1 : f.rtt;
      default: return 0;
    }
  }

  function ordered(room, results) {
    const key = sorting.key;
    return people(room).slice().sort((a, b) => {
      const fa = results.get(a.id), fb = results.get(b.id);
      const va = sortValue(key, a, fa), vb = sortValue(key, b, fb);
      let c = typeof va === "string" ? va.localeCompare(vb, "vi") : va - vb;
      if (c === 0 && key !== "state") c = sortValue("state", b, fb) - sortValue("state", a, fa);
      else c *= sorting.dir;
      return c || a.name.localeCompare(b.name, "vi");
    });
  }

  function whoCell() {
    return el("div", {class: "cc-who"},
      el("span", {class: "cc-dot", "aria-hidden": "true"}),
      el("div", {class: "cc-who-text"},
        el("strong", {class: "cc-name", "data-name": true}),
        el("span", {class: "cc-tags"})));
  }

  function fillWho(node, p, f) {
    node.querySelector("[data-name]").textContent = p.name;
    node.querySelector("[data-name]").title = p.name + " · " + roleName(p.role);
    const tags = node.querySelector(".cc-tags");
    tags.replaceChildren();
    if (p.presenter) tags.append(el("span", {class: "tag tag-presenter", text: T.presenter}));
    if (p.floor) tags.append(el("span", {class: "tag tag-floor", text: T.floor}));
    if (p.hand_raised) tags.append(el("span", {class: "tag tag-hand", text: T.hand}));
    const muted = shownMuted(p);
    if (muted.length) {
      tags.append(el("span", {class: "tag tag-muted",
                              text: T.muted + ": " + muted.map((s) => T["source." + s] || s).join(", ")}));
    }
  }

  function metricBox(metric) {
    const m = METRICS.find((x) => x.key === metric);
    return el("div", {class: "cd-chart", "data-metric": metric},
      el("div", {class: "cc-metric-head"},
        el("span", {class: "cc-metric-label", text: m.label()}),
        el("span", {class: "cc-metric-value", "data-value": true, text: "—"})),
      el("canvas", {class: "cd-canvas", role: "img", "aria-label": m.label()}));
  }

  function headCell(key) {
    const label = T["col." + key];
    if (!SORTABLE.has(key)) return el("th", {scope: "col", class: "cc-col-" + key, text: label});
    return el("th", {scope: "col", class: "cc-col-" + key, "data-col": key},
      el("button", {type: "button", class: "cc-sort", "data-sort": key, title: T.sortBy + " " + label.toLowerCase()},
        label, el("span", {class: "cc-sort-mark", "aria-hidden": "true"})));
  }

  function grid() {
    const table = el("table", {class: "cc-grid", "data-grid": true},
      el("caption", {class: "sr-only", text: T.participants}),
      el("thead", {}, el("tr", {}, ...COLUMNS.map(headCell))));
    return el("div", {class: "cc-grid-wrap"}, table);
  }

  function sparkSvg() {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "cc-spark");
    svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", T.bitrate);
    const path = document.createElementNS(SVG_NS, "path");
    svg.append(path);
    return svg;
  }

  // drawSpark: the participant's bitrate (sent + received) over the charts' span, gaps where it had none.
  function drawSpark(svg, f, now) {
    const span = spanFor(f.h, now);
    const up = f.h.up.points, down = f.h.down.points;
    let top = 1;
    const pts = [];
    for (let i = 0; i < up.length; i++) {
      const t = up[i][0];
      if (t < now - span) continue;
      const a = up[i][1], b = down[i] ? down[i][1] : null;
      const v = a === null && b === null ? null : (a || 0) + (b || 0);
      if (v !== null && v > top) top = v;
      pts.push([t, v]);
    }
    let d = "";
    let pen = false;
    let count = 0;
    for (const [t, v] of pts) {
      if (v === null) { pen = false; continue; }
      const x = (SPARK_W * (t - (now - span))) / span;
      const y = SPARK_H - 2 - ((SPARK_H - 4) * v) / top;
      d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
      pen = true;
      count++;
    }
    svg.firstChild.setAttribute("d", d);
    svg.dataset.points = String(count);
  }

  function participantBody(key, p) {
    const row = el("tr", {class: "cc-row", "data-participant": p.id, tabindex: "0", "aria-expanded": "false",
                          title: T.showCharts},
      el("td", {class: "cc-col-name"}, whoCell()),
      el("td", {class: "cc-col-unit", "data-cell": "unit"}),
      el("td", {class: "cc-col-state", "data-cell": "state"}),
      el("td", {class: "cc-col-audio", "data-cell": "audio"}),
      el("td", {class: "cc-col-bitrate cc-num", "data-cell": "bitrate"}),
      el("td", {class: "cc-col-loss cc-num", "data-cell": "loss"}),
      el("td", {class: "cc-col-rtt cc-num", "data-cell": "rtt"}),
      el("td", {class: "cc-col-spark"}, sparkSvg()));
    const charts = el("div", {class: "cd-charts"});
    for (const m of METRICS) charts.append(metricBox(m.key));
    const detail = el("tr", {class: "cc-detail", "data-charts": p.id, hidden: true},
      el("td", {colspan: String(COLUMNS.length)},
        el("div", {class: "cd-person"}, charts, el("dl", {class: "cd-detail", "data-detail": true}))));
    const body = el("tbody", {"data-key": key}, row, detail);
    const toggle = () => {
      if (open.has(key)) open.delete(key);
      else open.add(key);
      detail.hidden = !open.has(key);
      row.setAttribute("aria-expanded", String(open.has(key)));
      if (body.lastDraw) body.lastDraw();
    };
    row.addEventListener("click", (e) => { if (!e.target.closest("a, button")) toggle(); });
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
    });
    return body;
  }

  function cell(row, name) { return row.querySelector(`[data-cell="${name}"]`); }

  function updateBody(body, room, p, f, now) {
    const row = body.firstChild;
    row.dataset.level = f.level;
    row.dataset.state = p.state;
    row.dataset.audioOnly = String(!!p.audio_only);
    row.dataset.bitrate = String(f.media);
    row.dataset.publish = String(p.publish_bitrate);
    row.dataset.receive = String(p.receive.bitrate);
    row.dataset.loss = String(f.loss || 0);
    row.dataset.rtt = f.rtt === null ? "" : String(f.rtt);
    fillWho(row, p, f);
    const sub = [p.unit || "", roleName(p.role)].filter(Boolean);
    cell(row, "unit").textContent = p.unit || roleName(p.role);
    cell(row, "unit").title = sub.join(" · ");
    const why = f.reasons.join(" · ");
    cell(row, "state").replaceChildren(el("span", {class: "tag tag-state tag-" + p.state,
                                                   text: p.state === "connected" ? T.connected : T.reconnecting}),
                                       why ? el("small", {class: "cc-why", "data-why": true, text: why}) : "");
    cell(row, "state").title = why;
    cell(row, "audio").replaceChildren(p.audio_only ? el("span", {class: "tag tag-audio", text: T.audioOnly}) : "—");
    cell(row, "bitrate").textContent = p.state === "connected" ? upDown(f.up, f.down) : "—";
    cell(row, "loss").textContent = f.lossUp === null && f.lossDown === null ? "—" : pct(f.loss);
    cell(row, "loss").dataset.level = f.loss > LOSS_BAD ? "bad" : f.loss > LOSS_WARN ? "warn" : "ok";
    cell(row, "rtt").textContent = ms(f.rtt);
    cell(row, "rtt").dataset.level = f.rtt !== null && f.rtt > RTT_WARN ? "warn" : "ok";
    if (!document.hidden) drawSpark(row.querySelector(".cc-spark"), f, now);
    body.lastDraw = () => {
      if (!open.has(body.dataset.key) || document.hidden) return;
      for (const m of METRICS) drawMetric(body.querySelector(`[data-metric="${m.key}"]`), m.key, f, now);
      body.querySelector("[data-detail]").replaceChildren(detailList(p));
    };
    body.lastDraw();
  }

  function drawMetric(box, metric, f, now) {
    const spec = chartSpec(metric, f);
    Charts.lineChart(box.querySelector("canvas"), spec.series, Object.assign({now, span: spanFor(f.h, now)}, spec.opts));
    box.querySelector("[data-value]").textContent = spec.value;
    box.dataset.level = spec.level;
  }

  // fillGrid: the room's participants in the chosen order; returns {level, counts}. `again`: the same answer
  // redrawn in another order (its figures are not recorded twice).
  const latest = new Map();   // "meeting/participant" -> the figures of the last answer
  function fillGrid(wrap, room, now, again) {
    const table = wrap.querySelector("[data-grid]");
    const results = new Map();
    const counts = {warn: 0, bad: 0};
    let level = "ok";
    for (const p of people(room)) {
      const key = room.meeting_id + "/" + p.id;
      const f = again && latest.has(key) ? latest.get(key) : record(room, p, now);
      latest.set(key, f);
      results.set(p.id, f);
      if (f.level !== "ok") counts[f.level]++;
      if (LEVEL_RANK[f.level] > LEVEL_RANK[level]) level = f.level;
    }
    const existing = new Map();
    for (const body of Array.from(table.tBodies)) existing.set(body.dataset.key, body);
    let i = 0;
    for (const p of ordered(room, results)) {
      const key = room.meeting_id + "/" + p.id;
      let body = existing.get(key);
      if (body) existing.delete(key);
      else body = participantBody(key, p);
      if (table.tBodies[i] !== body) table.insertBefore(body, table.tBodies[i] || null);
      updateBody(body, room, p, results.get(p.id), now);
      i++;
    }
    for (const [key, body] of existing) { body.remove(); open.delete(key); latest.delete(key); }
    for (const th of table.tHead.rows[0].cells) {
      const col = th.dataset.col;
      if (!col) continue;
      th.setAttribute("aria-sort", col === sorting.key ? (sorting.dir < 0 ? "descending" : "ascending") : "none");
    }
    return {level, counts};
  }

  function detailList(p) {
    const frag = document.createDocumentFragment();
    const producers = shownProducers(p);
    const sending = producers.length
      ? producers.map((s) => `${T["source." + s.source] || s.source} ${Charts.formatBitrate(s.bitrate)}` +
                               (s.muted ? ` (${T.muted.toLowerCase()})` : "")).join(" · ")
      : "—";
    const r = p.receive;
    let receiving = Charts.formatBitrate(r.bitrate) + ` · ${T.slots}: ${r.slots}`;
    if (r.remb) receiving += ` · ${T.remb}: ${Charts.formatBitrate(r.remb)}`;
    for (const [k, v, cls] of [[T.sending, sending, "up"], [T.receiving, receiving, "down"]]) {
      frag.append(el("dt", {}, el("span", {class: "cc-key cc-key-" + cls, "aria-hidden": "true"}), k),
                  el("dd", {text: v}));
    }
    return frag;
  }

  // A header click: sort by that column (numbers largest first, words A to Z); again: the other way.
  root.addEventListener("click", (e) => {
    const btn = e.target.closest("[data-sort]");
    if (!btn) return;
    const key = btn.dataset.sort;
    if (sorting.key === key) sorting.dir = -sorting.dir;
    else { sorting.key = key; sorting.dir = key === "name" || key === "unit" ? 1 : -1; }
    if (last) render(last.data, last.now, true);
  });

  // ------------------------------------------------------------------------------ room cards (all rooms)

  function eyeIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "cc-icon");
    svg.setAttribute("aria-hidden", "true");
    for (const d of ["M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12z", "M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z"]) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  function roomLinks(id) {
    return el("div", {class: "cc-room-actions"},
      el("a", {class: "btn btn-primary btn-sm", href: `/live/${id}`, target: "_blank", rel: "noopener",
               "data-action": "enter", text: T.enter}),
      el("a", {class: "btn btn-secondary btn-sm", href: `/live/${id}?view=classroom`, target: "_blank",
               rel: "noopener", "data-action": "view-classroom"}, eyeIcon(), T.viewClassroom),
      el("a", {class: "btn btn-ghost btn-sm", href: `/console/${id}`, "data-action": "details", text: T.details}));
  }

  function roomBadges(room, level, counts) {
    const out = [el("span", {class: "badge badge-live", text: T.live})];
    out.push(el("span", {class: "badge cc-level cc-level-" + level, text: T[level]}));
    if (room.recording) {
      out.push(el("span", {class: "badge badge-rec", "data-recording": true, title: T.recordingTitle},
                  el("span", {class: "cc-rec-dot", "aria-hidden": "true"}), T.recording));
    }
    if (room.locked) out.push(el("span", {class: "badge badge-locked", text: T.locked}));
    if (counts && counts.warn) out.push(el("span", {class: "badge badge-warn", text: counts.warn + " " + T.warn.toLowerCase()}));
    if (counts && counts.bad) out.push(el("span", {class: "badge badge-bad", text: counts.bad + " " + T.bad.toLowerCase()}));
    return out;
  }

  function roomFacts(room) {
    const parts = [
      [T.presenter, room.presenter_name || T.noPresenter],
      [T.floor, room.floor_name || T.noFloor],
      [T.participants, String(room.participant_count)],
    ];
    if (room.lobby_waiting) parts.push([T.lobby, String(room.lobby_waiting)]);
    if (roomMode) parts.push([T.codec, room.video_codec]);
    const frag = document.createDocumentFragment();
    parts.forEach(([k, v], i) => {
      if (i) frag.append(el("span", {class: "cc-sep", "aria-hidden": "true", text: "·"}));
      frag.append(el("span", {class: "cc-fact"}, el("span", {class: "muted", text: k + ": "}), el("strong", {text: v})));
    });
    return frag;
  }

  function roomCard(room) {
    const id = room.meeting_id;
    return el("article", {class: "card cc-room", "data-room": String(id)},
      el("header", {class: "cc-room-head"},
        el("div", {class: "cc-room-title"},
          el("div", {class: "cc-badges", "data-badges": true}),
          el("h2", {}, el("a", {href: `/console/${id}`, "data-title": true})),
          el("p", {class: "cc-facts", "data-facts": true})),
        roomLinks(id)),
      grid(),
      el("p", {class: "cc-nobody muted", "data-nobody": true, text: T.nobody, hidden: true}));
  }

  function syncChildren(container, items, keyAttr, make) {
    const existing = new Map();
    for (const child of Array.from(container.children)) existing.set(child.getAttribute(keyAttr), child);
    let prev = null;
    const out = [];
    for (const item of items) {
      const key = String(item.key);
      let node = existing.get(key);
      if (node) existing.delete(key);
      else node = make(item.value);
      const want = prev ? prev.nextSibling : container.firstChild;
      if (node !== want) container.insertBefore(node, want);
      prev = node;
      out.push([node, item.value]);
    }
    for (const node of existing.values()) node.remove();
    return out;
  }

  function renderAll(rooms, now, again) {
    const list = root.querySelector("[data-rooms]");
    let total = 0;
    let warn = 0;
    let bad = 0;
    const pairs = syncChildren(list, rooms.map((r) => ({key: r.meeting_id, value: r})), "data-room", roomCard);
    for (const [card, room] of pairs) {
      const {level, counts} = fillGrid(card, room, now, again);
      card.dataset.level = level;
      card.querySelector("[data-title]").textContent = room.title;
      card.querySelector("[data-badges]").replaceChildren(...roomBadges(room, level, counts));
      card.querySelector("[data-facts]").replaceChildren(roomFacts(room));
      card.querySelector("[data-nobody]").hidden = people(room).length > 0;
      total += people(room).length;
      warn += counts.warn;
      bad += counts.bad;
    }
    const set = (k, v) => { root.querySelector(`[data-count="${k}"]`).textContent = String(v); };
    set("rooms", rooms.length);
    set("people", total);
    set("warn", warn);
    set("bad", bad);
    root.querySelector(".cc-stat-warn").classList.toggle("is-on", warn > 0);
    root.querySelector(".cc-stat-bad").classList.toggle("is-on", bad > 0);
    root.querySelector("[data-empty]").hidden = rooms.length > 0;
  }

  // ------------------------------------------------------------------------------ one room

  function renderRoom(room, now, again) {
    const wrap = root.querySelector("[data-people]");
    root.querySelector("[data-empty]").hidden = !!room && people(room).length > 0;
    if (!room) {
      root.dataset.live = "no";
      wrap.replaceChildren();
      root.querySelector("[data-badges]").replaceChildren(el("span", {class: "badge", text: T.notLive}));
      root.querySelector("[data-facts]").replaceChildren();
      root.querySelector("[data-empty-title]").textContent = T.notLive;
      return;
    }
    root.dataset.live = "yes";
    root.querySelector("[data-empty-title]").textContent = T.nobody;
    if (!wrap.firstChild) wrap.append(grid());
    const {level, counts} = fillGrid(wrap, room, now, again);
    wrap.hidden = people(room).length === 0;
    root.dataset.level = level;
    root.querySelector("[data-badges]").replaceChildren(...roomBadges(room, level, counts));
    root.querySelector("[data-facts]").replaceChildren(roomFacts(room));
  }

  let last = null;   // the last answer, redrawn at once when the operator sorts

  function render(data, now, again) {
    if (roomMode) renderRoom(data, now, again);
    else renderAll(data, now, again);
  }

  // ------------------------------------------------------------------------------ polling

  function showStale(text) {
    const box = root.querySelector("[data-stale]");
    box.hidden = !text;
    box.textContent = text || "";
    root.classList.toggle("is-stale", !!text);
  }

  async function poll() {
    timer = null;
    const now = Date.now();
    try {
      const res = await fetch(cfg.api, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (res.status === 401) {
        showStale(T.expired);
        root.dataset.state = "expired";
        return;  // no more polling: the login is gone
      }
      if (roomMode && res.status === 404) {
        last = null;
        renderRoom(null, now);
        forget(now);
      } else if (!res.ok) {
        throw new Error("HTTP " + res.status);
      } else {
        const data = await res.json();
        last = {data, now};
        render(data, now);
        forget(now);
      }
      failures = 0;
      showStale("");
      root.dataset.state = "ready";
      root.querySelector("[data-updated]").textContent = T.updated + " " + clock(new Date(now));
    } catch (err) {
      failures++;
      if (failures >= 2) showStale(T.stale);
    }
    timer = setTimeout(poll, cfg.pollMs);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) {
      clearTimeout(timer);
      poll();
    }
  });
  poll();
})();
