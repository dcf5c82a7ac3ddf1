// console.js: the operator console (/console: every live room; /console/{id}: one room, larger charts).
//
// Polls the API (config.api) every config.pollMs, keeps config.historyMs of figures per participant in the
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

  function drawMetric(box, metric, f, now, large) {
    const spec = chartSpec(metric, f);
    const canvas = box.querySelector("canvas");
    const opts = Object.assign({now, span: spanFor(f.h, now)}, spec.opts);
    if (!document.hidden) {
      if (large) Charts.lineChart(canvas, spec.series, opts);
      else Charts.sparkline(canvas, spec.series, opts);
    }
    const val = box.querySelector("[data-value]");
    val.textContent = spec.value;
    box.dataset.level = spec.level;
  }

  // ------------------------------------------------------------------------------ participant rows (all rooms)

  function whoCell(p) {
    const badges = el("span", {class: "cc-tags"});
    return el("div", {class: "cc-who"},
      el("span", {class: "cc-dot", "aria-hidden": "true"}),
      el("div", {class: "cc-who-text"},
        el("strong", {class: "cc-name", "data-name": true}),
        el("small", {class: "cc-sub", "data-sub": true}),
        badges,
        el("small", {class: "cc-why", "data-why": true})));
  }

  function fillWho(node, room, p, f) {
    node.querySelector("[data-name]").textContent = p.name;
    node.querySelector("[data-name]").title = p.name;
    const sub = [roleName(p.role)];
    if (p.unit) sub.push(p.unit);
    node.querySelector("[data-sub]").textContent = sub.join(" · ");
    const tags = node.querySelector(".cc-tags");
    tags.replaceChildren();
    if (p.presenter) tags.append(el("span", {class: "tag tag-presenter", text: T.presenter}));
    if (p.floor) tags.append(el("span", {class: "tag tag-floor", text: T.floor}));
    if (p.hand_raised) tags.append(el("span", {class: "tag tag-hand", text: T.hand}));
    if (p.audio_only) tags.append(el("span", {class: "tag", text: T.audioOnly}));
    const muted = shownMuted(p);
    if (muted.length) {
      tags.append(el("span", {class: "tag tag-muted",
                              text: T.muted + ": " + muted.map((s) => T["source." + s] || s).join(", ")}));
    }
    tags.append(el("span", {class: "tag tag-state tag-" + p.state,
                            text: p.state === "connected" ? T.connected : T.reconnecting}));
    node.querySelector("[data-why]").textContent = f.reasons.join(" · ");
  }

  function metricBox(metric, large) {
    const m = METRICS.find((x) => x.key === metric);
    return el("div", {class: large ? "cd-chart" : "cc-metric", "data-metric": metric},
      el("div", {class: "cc-metric-head"},
        el("span", {class: "cc-metric-label", text: m.label()}),
        el("span", {class: "cc-metric-value", "data-value": true, text: "—"})),
      el("canvas", {class: large ? "cd-canvas" : "cc-spark", role: "img", "aria-label": m.label()}));
  }

  function participantRow(p) {
    const row = el("div", {class: "cc-row", "data-participant": p.id, role: "row"}, whoCell(p));
    for (const m of METRICS) row.append(metricBox(m.key, false));
    return row;
  }

  function updateRow(row, room, p, f, now) {
    row.dataset.level = f.level;
    row.dataset.state = p.state;
    row.dataset.bitrate = String(f.media);
    row.dataset.publish = String(p.publish_bitrate);
    row.dataset.receive = String(p.receive.bitrate);
    fillWho(row, room, p, f);
    for (const m of METRICS) drawMetric(row.querySelector(`[data-metric="${m.key}"]`), m.key, f, now, false);
  }

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
      el("div", {class: "cc-table", role: "table"},
        el("div", {class: "cc-row cc-row-head", role: "row"},
          el("span", {text: T.participants}),
          ...METRICS.map((m) => el("span", {text: m.label()}))),
        el("div", {class: "cc-rows", "data-rows": true}),
        el("p", {class: "cc-nobody muted", "data-nobody": true, text: T.nobody, hidden: true})));
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

  function renderAll(rooms, now) {
    const list = root.querySelector("[data-rooms]");
    let total = 0;
    let warn = 0;
    let bad = 0;
    const pairs = syncChildren(list, rooms.map((r) => ({key: r.meeting_id, value: r})), "data-room", roomCard);
    for (const [card, room] of pairs) {
      const rows = card.querySelector("[data-rows]");
      const results = new Map();
      const counts = {warn: 0, bad: 0};
      let level = "ok";
      for (const p of people(room)) {
        const f = record(room, p, now);
        results.set(p.id, f);
        if (f.level !== "ok") counts[f.level]++;
        if (LEVEL_RANK[f.level] > LEVEL_RANK[level]) level = f.level;
      }
      const rowPairs = syncChildren(rows, people(room).map((p) => ({key: p.id, value: p})),
                                    "data-participant", participantRow);
      for (const [row, p] of rowPairs) updateRow(row, room, p, results.get(p.id), now);
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

  // ------------------------------------------------------------------------------ one room, large charts

  function personCard(p) {
    const charts = el("div", {class: "cd-charts"});
    for (const m of METRICS) charts.append(metricBox(m.key, true));
    return el("article", {class: "card cd-person", "data-participant": p.id},
      el("header", {class: "cd-person-head"}, whoCell(p)),
      charts,
      el("dl", {class: "cd-detail", "data-detail": true}));
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

  function renderRoom(room, now) {
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
    const results = new Map();
    const counts = {warn: 0, bad: 0};
    let level = "ok";
    for (const p of people(room)) {
      const f = record(room, p, now);
      results.set(p.id, f);
      if (f.level !== "ok") counts[f.level]++;
      if (LEVEL_RANK[f.level] > LEVEL_RANK[level]) level = f.level;
    }
    const pairs = syncChildren(wrap, people(room).map((p) => ({key: p.id, value: p})),
                               "data-participant", personCard);
    for (const [card, p] of pairs) {
      const f = results.get(p.id);
      card.dataset.level = f.level;
      card.dataset.state = p.state;
      card.dataset.bitrate = String(f.media);
      fillWho(card, room, p, f);
      for (const m of METRICS) drawMetric(card.querySelector(`[data-metric="${m.key}"]`), m.key, f, now, true);
      card.querySelector("[data-detail]").replaceChildren(detailList(p));
    }
    root.dataset.level = level;
    root.querySelector("[data-badges]").replaceChildren(...roomBadges(room, level, counts));
    root.querySelector("[data-facts]").replaceChildren(roomFacts(room));
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
        renderRoom(null, now);
        forget(now);
      } else if (!res.ok) {
        throw new Error("HTTP " + res.status);
      } else {
        const data = await res.json();
        if (roomMode) renderRoom(data, now);
        else renderAll(data, now);
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
