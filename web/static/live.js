// live.js: the live room page (studio for presenters and operators, classroom view) on top of protocol.js.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("live-config").textContent);
  const T = JSON.parse(document.getElementById("live-text").textContent);
  const root = document.getElementById("live");
  const $ = (sel, el) => (el || root).querySelector(sel);
  const $$ = (sel, el) => Array.from((el || root).querySelectorAll(sel));

  const client = new TaphuanClient({ meetingId: cfg.meetingId });
  window.live = client;  // for tests and the console
  let local = null;
  let gridParticipants = [];
  let gridPage = 0;
  let gridPages = 1;
  let screenTrack = null;

  function setConn(text, kind) {
    const badge = $("[data-conn]");
    badge.textContent = text;
    badge.dataset.kind = kind;
    root.dataset.state = kind;
  }

  function nameOf(pid) {
    if (!pid) return "";
    if (pid === client.participantId) return T.you;
    const p = client.participants.get(pid);
    return p ? p.name : pid;
  }

  function attach(slot) {
    const el = $(`[data-slot="${slot}"]`);
    const stream = client.slotStream(slot);
    if (el && stream && el.srcObject !== stream) {
      el.srcObject = stream;
      const p = el.play();
      if (p && p.catch) p.catch(() => {});
    }
  }

  function renderSlot(msg) {
    const tile = $(`[data-tile="${msg.slot}"]`);
    if (!tile) return;
    const name = tile.querySelector("[data-name]");
    if (name) name.textContent = nameOf(msg.participant_id);
    tile.dataset.participant = msg.participant_id || "";
    tile.dataset.state = msg.state;
    const overlay = tile.querySelector("[data-overlay]");
    if (msg.slot === "presenter-video") {
      overlay.hidden = msg.state === "live";
      overlay.textContent = msg.state === "reconnecting" ? T.reconnectingSlot
        : msg.state === "muted" ? T.camOffShort : T.waitingPresenter;
    } else {
      if (overlay) {
        overlay.hidden = msg.state !== "reconnecting" && msg.state !== "muted";
        overlay.textContent = msg.state === "muted" ? T.camOffShort : T.reconnectingSlot;
      }
      // A slot with nothing to show is hidden (a muted screen share means "not sharing").
      tile.hidden = msg.state === "empty" || (msg.slot === "screen" && msg.state === "muted");
    }
    attach(msg.slot);
  }

  function renderPeople() {
    const list = $("[data-people-list]");
    list.textContent = "";
    const people = [[client.participantId, { name: T.you, role: client.role, state: "connected" }],
      ...client.participants.entries()];
    $("[data-people]").textContent = String(people.length);
    for (const [pid, p] of people) {
      const li = document.createElement("li");
      li.dataset.participant = pid;
      li.className = "person";
      const hand = client.hands.has(pid) ? "✋ " : "";
      const role = pid === client.presenterId ? ` (${T.presenter})` : "";
      const label = document.createElement("span");
      label.textContent = `${hand}${p.name}${role}`;
      if (p.state === "reconnecting") label.textContent += ` — ${T.reconnecting}`;
      li.appendChild(label);
      if (pid === client.floorId) li.classList.add("has-floor");
      if (cfg.studio && pid !== client.participantId && (p.role === "classroom" || p.role === "learner")) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "btn btn-sm";
        b.dataset.action = "give-floor";
        b.dataset.participant = pid;
        b.textContent = pid === client.floorId ? T.takeFloor : T.giveFloor;
        li.appendChild(b);
      }
      list.appendChild(li);
    }
    const hand = $("[data-action=hand]");
    if (hand) hand.textContent = client.hands.has(client.participantId) ? `✋ ${T.lowerHand}` : `✋ ${T.hand}`;
    const take = $("[data-action=take-floor]");
    if (take) take.disabled = !client.floorId;
  }

  function renderGrid() {
    const page = $("[data-page]");
    if (page) page.textContent = `${gridPage + 1}/${Math.max(1, gridPages)}`;
    gridParticipants.forEach((pid, i) => {
      const tile = $(`[data-tile="grid-${i}"]`);
      if (tile) tile.querySelector("[data-name]").textContent = nameOf(pid);
    });
  }

  async function getMedia() {
    const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    const video = window.TAPHUAN_VIDEO || { width: 640, height: 360 };
    try {
      return await navigator.mediaDevices.getUserMedia({ video, audio });
    } catch (err) {
      try { return await navigator.mediaDevices.getUserMedia({ audio }); } catch (e) { return null; }
    }
  }

  async function join() {
    $("[data-action=join]").disabled = true;
    setConn(T.connecting, "connecting");
    local = await getMedia();
    if (!local) {
      const err = $("[data-error]");
      err.hidden = false;
      err.textContent = T.noCamera;
    } else {
      $("[data-self]").srcObject = local;
    }
    try {
      await client.connect();
      if (local && cfg.role !== "guest") await client.publish(local, { screenSlot: cfg.studio, videoCodec: cfg.videoCodec === "H264" ? "video/H264" : "video/VP8" });
    } catch (err) {
      setConn(T.closed, "closed");
      const box = $("[data-error]");
      box.hidden = false;
      box.textContent = err.message || String(err);
      $("[data-action=join]").disabled = false;
      return;
    }
    $("[data-join]").hidden = true;
    $("[data-stage]").hidden = false;
    $$("[data-action]").forEach((b) => { if (b.dataset.action !== "take-floor") b.disabled = false; });
    if (!local) { $("[data-action=cam]").disabled = true; $("[data-action=mic]").disabled = true; }
    setConn(T.connected, "connected");
    renderPeople();
  }

  client.addEventListener("track", (e) => attach(e.detail.slot));
  client.addEventListener("slot", (e) => renderSlot(e.detail));
  for (const type of ["participant-joined", "participant-left", "participant-state", "hand", "floor", "presenter", "joined"]) {
    client.addEventListener(type, () => { renderPeople(); renderGrid(); });
  }
  client.addEventListener("grid", (e) => {
    gridParticipants = e.detail.participants;
    gridPage = e.detail.page;
    gridPages = e.detail.pages;
    renderGrid();
  });
  client.addEventListener("reconnecting", () => setConn(T.reconnecting, "reconnecting"));
  client.addEventListener("reconnected", () => setConn(T.connected, "connected"));
  client.addEventListener("mute-request", (e) => {
    const b = $(e.detail.source === "mic" ? "[data-action=mic]" : "[data-action=cam]");
    if (b) b.textContent = e.detail.muted ? (e.detail.source === "mic" ? T.micOn : T.camOn) : (e.detail.source === "mic" ? T.micOff : T.camOff);
  });
  client.addEventListener("closed", (e) => {
    setConn(T.closed, "closed");
    const box = $("[data-error]");
    box.hidden = false;
    box.textContent = T[e.detail.reason] || e.detail.message;
    $("[data-join]").hidden = false;
  });

  root.addEventListener("click", async (ev) => {
    const button = ev.target.closest("[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    try {
      if (action === "join") await join();
      else if (action === "hand") await client.raiseHand(!client.hands.has(client.participantId));
      else if (action === "give-floor") {
        const pid = button.dataset.participant || button.closest("[data-participant]").dataset.participant;
        await client.giveFloor(pid === client.floorId ? null : pid);
      } else if (action === "take-floor") await client.giveFloor(null);
      else if (action === "cam" || action === "mic") {
        if (!local) return;
        const tracks = action === "cam" ? local.getVideoTracks() : local.getAudioTracks();
        const on = !tracks.every((t) => t.enabled);
        tracks.forEach((t) => { t.enabled = on; });
        button.textContent = action === "cam" ? (on ? T.camOff : T.camOn) : (on ? T.micOff : T.micOn);
      } else if (action === "screen") {
        if (screenTrack) {
          screenTrack.stop();
          screenTrack = null;
          await client.setScreen(null);
          button.textContent = T.shareScreen;
        } else {
          const s = await navigator.mediaDevices.getDisplayMedia({ video: true });
          screenTrack = s.getVideoTracks()[0];
          screenTrack.addEventListener("ended", () => { if (screenTrack) button.click(); });
          await client.setScreen(screenTrack);
          button.textContent = T.stopScreen;
        }
      } else if (action === "prev-page") await client.gridPage(Math.max(0, gridPage - 1));
      else if (action === "next-page") await client.gridPage(gridPage + 1);
      else if (action === "fullscreen") {
        if (document.fullscreenElement) await document.exitFullscreen(); else await root.requestFullscreen();
      } else if (action === "leave") {
        await client.leave();
        location.href = "/";
      }
    } catch (err) {
      const box = $("[data-error]");
      box.hidden = false;
      box.textContent = err.message || String(err);
    }
  });
})();
