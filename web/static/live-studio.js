// live-studio.js: the presenter studio (trainers, leaders; operators get the same): classroom grid with paging
// (video for one page, tiles without video for the rest), raised-hands queue, floor, mute one or all, remove,
// lock, hand presenting over, lobby admission, per-classroom quality from the server's `stats`, and the
// recording: start and stop (a refusal such as a full disk stays on screen), chapter markers.
(function () {
  "use strict";
  const L = window.TaphuanLive;
  const { client, cfg, T, $, $$, root } = L;
  const AUDIENCE = ["classroom", "learner", "guest"];
  const STATS_MS = 4000;
  const grid = { page: 0, pages: 1, participants: [] };
  const mutedMic = new Set();     // participants whose microphone we muted
  const quality = new Map();      // participant id -> 1..3
  const prevStats = new Map();    // participant id -> {packets, lost}
  let lobby = [];
  let statsTimer = null;

  const audience = () => Array.from(client.participants.entries()).filter(([, p]) => AUDIENCE.includes(p.role));

  // ---------------------------------------------------------------- pieces

  function qbar(pid) {
    const level = quality.get(pid) || 0;
    const label = level === 3 ? T.net_good : level === 2 ? T.net_fair : level === 1 ? T.net_weak : T.measuring;
    return L.el("span", { class: "lv-qbar", "data-q": "", "data-level": String(level), title: `${T.qualityTitle}: ${label}` },
      L.el("i"), L.el("i"), L.el("i"));
  }

  function actionsFor(pid, p, compact) {
    const box = [];
    if (AUDIENCE.includes(p.role)) {
      const has = pid === client.floorId;
      box.push(L.button("give-floor", compact ? "" : has ? T.takeFloor : T.giveFloor, {
        "data-participant": pid, class: `lv-btn lv-btn-sm lv-btn-icon ${has ? "lv-btn-warn" : "lv-btn-primary"}`,
        title: has ? T.takeFloor : T.giveFloor, "aria-label": has ? T.takeFloor : T.giveFloor,
      }, has ? "undo" : "megaphone"));
      const muted = mutedMic.has(pid);
      box.push(L.button("mute-one", "", {
        "data-participant": pid, title: muted ? T.unmuteMic : T.muteMic, "aria-label": muted ? T.unmuteMic : T.muteMic,
        class: `lv-btn lv-btn-sm lv-btn-icon${muted ? " is-muted" : ""}`,
      }, muted ? "mic-off" : "mic"));
    } else if (pid !== client.presenterId && (p.role === "trainer" || p.role === "leader")) {
      box.push(L.button("set-presenter", T.makePresenter, { "data-participant": pid }, "present"));
    }
    if (AUDIENCE.includes(p.role) || client.role === "operator") {
      box.push(L.button("remove", "", { "data-participant": pid, title: T.remove, "aria-label": T.remove, class: "lv-btn lv-btn-sm lv-btn-icon lv-btn-danger-ghost" }, "x"));
    }
    return box;
  }

  // A classroom that chose audio only sees no video and sends no camera: marked wherever it shows.
  function audioOnlyBadge() {
    return L.el("span", { class: "lv-ao", "data-audio-only": "", title: T.audioOnlyTitle }, L.icon("headphones"), L.el("span", { text: T.audioOnly }));
  }

  // ---------------------------------------------------------------- grid and other classrooms

  function renderGrid() {
    const count = audience().length;
    $("[data-class-count]").textContent = String(count);
    $("[data-page]").textContent = `${T.page} ${grid.page + 1}/${Math.max(1, grid.pages)}`;
    $("[data-action=prev-page]").disabled = grid.page <= 0;
    $("[data-action=next-page]").disabled = grid.page >= grid.pages - 1;
    $("[data-pager]").hidden = grid.pages <= 1;
    $("[data-grid-empty]").hidden = count > 0;
    for (let i = 0; i < cfg.gridSlots; i++) {
      const tile = $(`[data-tile="grid-${i}"]`);
      const st = client.slotState[`grid-${i}`];
      const pid = st && st.participant_id;
      const p = pid && client.participants.get(pid);
      tile.hidden = !p;
      if (!p) continue;
      tile.dataset.participant = pid;
      $("[data-name]", tile).textContent = p.name;
      $("[data-name]", tile).title = p.name;  // cut short beside a badge
      $("[data-unit]", tile).textContent = L.unitOf(pid);
      $("[data-hand]", tile).hidden = !client.hands.has(pid);
      $("[data-audio-only]", tile).hidden = !p.audio_only;
      tile.classList.toggle("has-floor", pid === client.floorId);
      tile.classList.toggle("has-hand", client.hands.has(pid));
      const q = $("[data-q]", tile);
      q.replaceWith(qbar(pid));
      const acts = $("[data-actions]", tile);
      acts.textContent = "";
      acts.append(...actionsFor(pid, p, true));
      const overlay = $("[data-overlay]", tile);
      if (st.state === "empty") { overlay.hidden = false; overlay.textContent = T.noCameraShort; }
    }
    const shown = new Set(grid.participants);
    const others = audience().filter(([pid]) => !shown.has(pid));
    const ul = $("[data-others]");
    ul.textContent = "";
    $("[data-others-wrap]").hidden = others.length === 0;
    for (const [pid, p] of others) {
      ul.append(L.el("li", { class: `lv-chip-item${pid === client.floorId ? " has-floor" : ""}${client.hands.has(pid) ? " has-hand" : ""}`, "data-participant": pid },
        qbar(pid), p.audio_only ? audioOnlyBadge() : null,
        L.el("span", { class: "lv-gname" }, L.el("b", { title: p.name }, client.hands.has(pid) ? L.icon("hand") : null, p.name), L.el("small", { text: L.unitOf(pid) || L.roleName(p.role) })),
        L.el("span", { class: "lv-gactions" }, ...actionsFor(pid, p, true))));
    }
    fitGrid();
  }

  // The page's tiles as large as they can be while all of them fit the grid's box (no scrolling): try every
  // number of columns, keep the widest tile (16:10) that fits both ways. Below MIN_TILE the grid scrolls.
  const TILE_RATIO = 16 / 10;
  const MIN_TILE = 150;
  function fitGrid() {
    const box = $("[data-grid]");
    const n = box.querySelectorAll("[data-tile]:not([hidden])").length;
    const gap = parseFloat(getComputedStyle(box).columnGap) || 8;
    const w = box.clientWidth;
    const h = box.clientHeight;
    if (!n || !w || !h) return;
    let best = { cols: 1, width: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const width = Math.floor(Math.min((w - gap * (cols - 1)) / cols, ((h - gap * (rows - 1)) / rows) * TILE_RATIO));
      if (width > best.width) best = { cols, width };
    }
    box.style.setProperty("--cols", String(best.cols));
    box.style.setProperty("--tile-w", `${Math.max(MIN_TILE, best.width)}px`);
  }
  if (window.ResizeObserver) new ResizeObserver(fitGrid).observe($("[data-grid]"));

  // ---------------------------------------------------------------- hands, people, lobby

  function renderHands() {
    const ol = $("[data-hands]");
    ol.textContent = "";
    const order = L.handOrder.filter((pid) => client.hands.has(pid) && client.participants.has(pid));
    order.forEach((pid, i) => {
      const p = client.participants.get(pid);
      ol.append(L.el("li", { class: "lv-hand-item", "data-participant": pid },
        L.el("span", { class: "lv-hand-n", text: String(i + 1) }),
        L.el("span", { class: "lv-gname" }, L.el("b", { text: p.name }), L.el("small", { text: L.unitOf(pid) || L.roleName(p.role) })),
        L.button("give-floor", T.giveFloor, { "data-participant": pid, class: "lv-btn lv-btn-sm lv-btn-primary" }, "megaphone")));
    });
    $("[data-hands-empty]").hidden = order.length > 0;
    const badge = $("[data-badge=hands]");
    badge.hidden = order.length === 0;
    badge.textContent = String(order.length);
  }

  function renderPeople() {
    const ul = $("[data-people-list]");
    ul.textContent = "";
    const me = [client.participantId, { name: T.You, role: client.role, state: "connected" }];
    const people = [me, ...client.participants.entries()];
    $("[data-people-count]").textContent = `(${people.length})`;
    for (const [pid, p] of people) {
      const tags = [];
      if (pid === client.presenterId) tags.push(L.el("span", { class: "lv-tagmini lv-tagmini-pres", text: T.presenter }));
      if (pid === client.floorId) tags.push(L.el("span", { class: "lv-tagmini lv-tagmini-floor", text: T.speaking }));
      if (p.audio_only) tags.push(L.el("span", { class: "lv-tagmini lv-tagmini-warn", "data-audio-only": "", text: T.audioOnly }));
      if (p.state === "reconnecting") tags.push(L.el("span", { class: "lv-tagmini lv-tagmini-warn", text: T.reconnecting }));
      const hand = client.hands.has(pid) ? L.icon("hand") : null;
      const li = L.el("li", { class: `person lv-person${pid === client.floorId ? " has-floor" : ""}`, "data-participant": pid },
        L.el("span", { class: "lv-avatar", "data-role": p.role, text: (p.name || "?").trim().charAt(0).toUpperCase() }),
        L.el("span", { class: "lv-gname" }, L.el("b", { "data-hand-raised": hand ? "1" : null }, hand, p.name),
          L.el("small", {}, L.roleName(p.role), L.unitOf(pid) ? ` · ${L.unitOf(pid)}` : "", ...tags)),
        pid === client.participantId ? null : L.el("span", { class: "lv-gactions" }, ...actionsFor(pid, p, true)));
      ul.append(li);
    }
  }

  function renderLobby() {
    const ul = $("[data-lobby-list]");
    ul.textContent = "";
    for (const w of lobby) {
      ul.append(L.el("li", { class: "lv-lobby-item", "data-lobby": w.lobby_id },
        L.el("span", { class: "lv-avatar", "data-role": w.role, text: (w.name || "?").trim().charAt(0).toUpperCase() }),
        L.el("span", { class: "lv-gname" }, L.el("b", { text: w.name }), L.el("small", { text: L.roleName(w.role) })),
        L.el("span", { class: "lv-gactions" },
          L.button("admit", T.admit, { "data-lobby": w.lobby_id, class: "lv-btn lv-btn-sm lv-btn-primary" }, "check"),
          L.button("refuse", T.refuse, { "data-lobby": w.lobby_id, class: "lv-btn lv-btn-sm lv-btn-danger-ghost" }))));
    }
    $("[data-lobby-empty]").hidden = lobby.length > 0;
    const badge = $("[data-badge=lobby]");
    badge.hidden = lobby.length === 0;
    badge.textContent = String(lobby.length);
  }

  function renderSelf() {
    const tag = $("[data-self-tag]");
    tag.textContent = client.presenterId === client.participantId ? `${T.You} · ${T.presenting}` : T.You;
    tag.classList.toggle("lv-tag-live", client.presenterId === client.participantId);
  }

  // ---------------------------------------------------------------- recording

  let recordBusy = false;

  function renderRecord() {
    const btn = $("[data-action=record]");
    const on = client.recording && L.joined;
    btn.disabled = !L.joined || recordBusy || !cfg.recordingEnabled;
    btn.setAttribute("aria-pressed", String(on));
    btn.classList.toggle("is-on", on);
    btn.replaceChildren(L.icon(on ? "stop" : "rec"), L.el("span", { text: on ? T.stopRecording : T.record }));
    $("[data-action=marker]").hidden = !on;
    if (on) $("[data-rec-error]").hidden = true;
  }

  function recordError(message, title) {
    $("[data-rec-error-title]").textContent = title || T.recordingNotStarted;
    $("[data-rec-error-text]").textContent = L.localMessage(message);
    $("[data-rec-error]").hidden = false;
  }

  async function toggleRecording() {
    if (client.recording) {
      if (!await L.confirm(T.stopRecordingTitle, T.stopRecordingText, T.stopRecording)) return;
    }
    recordBusy = true;
    renderRecord();
    try {
      if (client.recording) {
        await client.recordStop();
      } else {
        $("[data-rec-error]").hidden = true;
        await client.recordStart();
        L.toast(T.recordingStarted, "ok", "rec");
      }
    } catch (err) {
      // A full disk (or recording turned off) must not go unnoticed: it stays until closed.
      if (err && ["disk-full", "storage", "forbidden"].includes(err.code)) recordError(err.message);
      else L.error(err);
    } finally {
      recordBusy = false;
      renderRecord();
    }
  }

  function askMarker() {
    const dlg = $("[data-marker-dialog]");
    const input = $("[data-marker-title]", dlg);
    input.value = "";
    dlg.returnValue = "";
    dlg.addEventListener("close", async () => {
      const title = input.value.trim();
      if (dlg.returnValue !== "ok") return;
      if (!title) { L.toast(T.markerNeeded, "warn"); return; }
      try {
        await client.recordMarker(title.slice(0, 200));
        L.toast(`${T.markerAdded}: ${title}`, "ok", "check");
      } catch (err) {
        L.error(err);
      }
    }, { once: true });
    dlg.showModal();
    input.focus();
  }

  $("[data-marker-cancel]").addEventListener("click", () => $("[data-marker-dialog]").close("cancel"));
  client.addEventListener("recording", (e) => {
    if (e.detail.state === "refused") recordError(e.detail.reason || "");
    // the disk refused the running recording's writes: it stopped, and the moderators must know why
    if (e.detail.state === "stopped" && e.detail.reason === "storage") recordError(T.recordingNotWrittenText, T.recordingNotWritten);
  });
  root.addEventListener("live:recording", renderRecord);

  function renderAll() {
    renderGrid();
    renderHands();
    renderPeople();
    renderSelf();
  }

  // ---------------------------------------------------------------- quality from the server's stats

  async function pollStats() {
    if (!L.joined || client.reconnecting) return;
    let snap;
    try { snap = await client.stats(); } catch (e) { return; }
    for (const part of snap.participants || []) {
      const pid = part.participant_id;
      if (!AUDIENCE.includes(part.role)) continue;
      let packets = 0; let lost = 0; let videoRate = null;
      for (const pr of part.producers || []) {
        packets += pr.packets || 0;
        lost += pr.packets_lost || 0;
        if (pr.source === "camera") videoRate = pr.bitrate || 0;
      }
      let downLoss = 0; let rtt = 0;
      for (const c of part.consumers || []) {
        if (c.source_participant) downLoss = Math.max(downLoss, c.fraction_lost || 0);
        if (c.rtt) rtt = Math.max(rtt, c.rtt);
      }
      const prev = prevStats.get(pid) || { packets: 0, lost: 0 };
      prevStats.set(pid, { packets, lost });
      const dp = Math.max(0, packets - prev.packets);
      const dl = Math.max(0, lost - prev.lost);
      const upLoss = dp + dl > 0 ? dl / (dp + dl) : 0;
      const loss = Math.max(upLoss, downLoss);
      let level = loss < 0.02 && rtt < 0.3 ? 3 : loss < 0.08 && rtt < 0.7 ? 2 : 1;
      if (videoRate !== null && videoRate < 60000 && dp > 0) level = Math.min(level, 2);
      if (part.state === "reconnecting") level = 1;
      quality.set(pid, level);
    }
    renderGrid();
  }

  // ---------------------------------------------------------------- events

  client.addEventListener("grid", (e) => {
    grid.page = e.detail.page;
    grid.pages = e.detail.pages;
    grid.participants = e.detail.participants;
    renderGrid();
  });
  client.addEventListener("slot", (e) => { if (e.detail.slot.startsWith("grid-")) renderGrid(); });
  for (const type of ["joined", "participant-joined", "participant-left", "participant-state", "participant-audio-only", "hand",
    "floor", "presenter"]) {
    client.addEventListener(type, renderAll);
  }
  client.addEventListener("participant-left", (e) => {
    mutedMic.delete(e.detail.participant_id);
    quality.delete(e.detail.participant_id);
  });
  client.addEventListener("hand", (e) => {
    if (e.detail.raised && e.detail.participant_id !== client.participantId) {
      L.toast(`${L.nameOf(e.detail.participant_id)} ${T.raisedHand}`, "info", "hand");
    }
  });
  client.addEventListener("lobby-waiting", (e) => {
    const before = new Set(lobby.map((w) => w.lobby_id));
    lobby = e.detail.waiting || [];
    for (const w of lobby) if (!before.has(w.lobby_id)) L.toast(`${w.name} ${T.isWaiting}`, "warn", "door");
    renderLobby();
  });
  client.addEventListener("poll", () => { /* polls render themselves (live-polls.js) */ });
  root.addEventListener("live:joined", () => {
    renderAll();
    renderRecord();
    renderLobby();
    clearInterval(statsTimer);
    statsTimer = setInterval(pollStats, STATS_MS);
  });
  root.addEventListener("live:ended", () => clearInterval(statsTimer));

  root.addEventListener("click", async (ev) => {
    const b = ev.target.closest("[data-action]");
    if (!b || b.disabled) return;
    const pid = b.dataset.participant;
    const p = pid ? client.participants.get(pid) : null;
    try {
      switch (b.dataset.action) {
        case "give-floor":
          if (pid === client.floorId) await client.giveFloor(null);
          else {
            if (mutedMic.has(pid)) {
              await client.mute(pid, "mic", false);
              mutedMic.delete(pid);
            }
            await client.giveFloor(pid);
          }
          break;
        case "mute-one":
          if (mutedMic.has(pid)) { await client.mute(pid, "mic", false); mutedMic.delete(pid); }
          else { await client.mute(pid, "mic", true); mutedMic.add(pid); }
          renderAll();
          break;
        case "mute-all": {
          const reply = await client.muteAll("mic");
          for (const [id] of audience()) mutedMic.add(id);
          L.toast(`${T.mutedAll} (${reply.muted})`, "ok", "mic-off");
          renderAll();
          break;
        }
        case "remove":
          if (p && await L.confirm(T.removeTitle, `${p.name}: ${T.removeText}`, T.remove)) await client.remove(pid);
          break;
        case "set-presenter":
          if (p && await L.confirm(T.handOverTitle, `${p.name}: ${T.handOverText}`, T.makePresenter)) await client.setPresenter(pid);
          break;
        case "prev-page": await client.gridPage(Math.max(0, grid.page - 1)); break;
        case "next-page": await client.gridPage(grid.page + 1); break;
        case "lock": await client.lock(!(client.room && client.room.locked)); break;
        case "admit": b.disabled = true; await client.admit(b.dataset.lobby); break;
        case "record": await toggleRecording(); break;
        case "marker": askMarker(); break;
        case "rec-error-close": $("[data-rec-error]").hidden = true; break;
        case "refuse": b.disabled = true; await client.refuse(b.dataset.lobby); break;
        default: break;
      }
    } catch (err) {
      b.disabled = false;
      L.error(err);
    }
  });
})();
