// live.js: the live room page on top of protocol.js: device check → (lobby) → studio or classroom view.
// Shared helpers live in window.TaphuanLive (L); live-quality.js, live-chat.js, live-polls.js and
// live-studio.js (presenters and operators only) add their parts to it. window.live is the TaphuanClient.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("live-config").textContent);
  const T = JSON.parse(document.getElementById("live-text").textContent);
  const root = document.getElementById("live");
  const $ = (sel, el) => (el || root).querySelector(sel);
  const $$ = (sel, el) => Array.from((el || root).querySelectorAll(sel));
  const MODERATORS = ["operator", "trainer", "leader"];

  const client = new TaphuanClient({ meetingId: cfg.meetingId });
  window.live = client;  // for tests and the console

  const L = {
    client, cfg, T, root, $, $$,
    local: null,            // the published camera + microphone stream
    screenTrack: null,      // our shared screen
    audioOnly: false,
    forcedMute: new Set(),  // sources a moderator muted on us
    pttHeld: false,
    handOrder: [],          // participant ids in order of raising
    activeTab: null,
    joined: false,
  };
  window.TaphuanLive = L;

  // ------------------------------------------------------------------ helpers

  L.isModerator = (role) => MODERATORS.includes(role);
  L.nameOf = (pid) => {
    if (!pid) return "";
    if (pid === client.participantId) return T.you;
    const p = client.participants.get(pid);
    return p ? p.name : "…";
  };
  L.unitOf = (pid) => {
    const p = client.participants.get(pid);
    return (p && cfg.units && cfg.units[p.name]) || "";
  };
  L.roleName = (role) => T[`role_${role}`] || role;
  L.el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "title" || k === "type" || k === "role") e.setAttribute(k, v === true ? "" : v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
    return e;
  };
  L.icon = (name) => {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "lv-i");
    svg.setAttribute("aria-hidden", "true");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", `#i-${name}`);
    svg.append(use);
    return svg;
  };
  L.button = (action, label, extra, icon) => {
    const b = L.el("button", Object.assign({ type: "button", class: "lv-btn lv-btn-sm", "data-action": action }, extra || {}));
    if (icon) b.append(L.icon(icon));
    if (label) b.append(L.el("span", { text: label }));
    return b;
  };
  L.time = (iso) => window.taphuanFormat.formatTime(iso);  // the server's timezone, not the PC's (format.js)
  L.toast = (text, kind, icon) => {
    const t = L.el("div", { class: `lv-toast lv-toast-${kind || "info"}`, role: "status" }, icon ? L.icon(icon) : null, L.el("span", { text }));
    $("[data-toasts]").append(t);
    setTimeout(() => t.classList.add("lv-toast-out"), 4500);
    setTimeout(() => t.remove(), 5000);
  };
  L.confirm = (title, text, okLabel) => new Promise((resolve) => {
    const dlg = $("[data-confirm]");
    $("[data-confirm-title]", dlg).textContent = title;
    $("[data-confirm-text]", dlg).textContent = text || "";
    $("[data-confirm-ok]", dlg).textContent = okLabel || T.confirm;
    dlg.returnValue = "";
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
  });
  // Server messages are "Vietnamese / English": show the page's language.
  L.localMessage = (text) => {
    const parts = String(text || "").split(" / ");
    if (parts.length !== 2) return String(text || "");
    return document.documentElement.lang === "en" ? parts[1] : parts[0];
  };
  L.error = (err) => {
    const text = (err && err.message) || String(err);
    L.toast(L.localMessage(text), "error");
  };
  L.setTab = (name) => {
    if (!$(`[data-panel="${name}"]`)) return;
    L.activeTab = name;
    $$("[data-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
    $$(".lv-studio-side [data-panel]").forEach((p) => { p.hidden = p.dataset.panel !== name; });
    root.dispatchEvent(new CustomEvent("live:tab", { detail: { tab: name } }));
  };
  L.attach = (el, stream) => {
    if (el && el.srcObject !== stream) {
      el.srcObject = stream;
      if (stream) {
        const p = el.play();
        if (p && p.catch) p.catch(() => {});
      }
    }
  };

  // ------------------------------------------------------------------ views and connection state

  function showView(view) {
    root.dataset.view = view;
    $("[data-join]").hidden = view !== "check";
    $("[data-lobby]").hidden = view !== "lobby";
    $("[data-ended]").hidden = view !== "ended";
    $("[data-stage]").hidden = view !== "stage";
    const inRoom = view === "stage";
    $("[data-people-chip]").hidden = !inRoom;
    renderRecording();
    $("[data-quality]").hidden = !inRoom;
    $("[data-action=leave]").disabled = !inRoom;
  }
  L.showView = showView;

  function setConn(text, kind) {
    const badge = $("[data-conn]");
    badge.textContent = text;
    badge.dataset.kind = kind;
    root.dataset.state = kind;
    $("[data-reconnect-banner]").hidden = kind !== "reconnecting";
  }

  function ended(title, message) {
    showView("ended");
    setConn(T.closed, "closed");
    $("[data-ended-title]").textContent = title;
    $("[data-ended-msg]").textContent = message || "";
    if (L.local) L.local.getTracks().forEach((t) => t.stop());
    if (L.screenTrack) L.screenTrack.stop();
    // what was about the room goes with it: a replaced PC keeps no weak-network offer, no control stays enabled
    $$(".lv-banner").forEach((b) => { b.hidden = true; });
    renderControls();
    root.dispatchEvent(new CustomEvent("live:ended"));
  }
  L.ended = ended;

  // ------------------------------------------------------------------ device check

  const check = new DeviceCheck($("[data-join]"), T, {
    // the studio captures 720p (its camera's three layers reach 1280x720 for the projectors and the recording), a
    // classroom 360p (two layers); a camera that cannot gives what it has, and the layers follow its size
    video: window.TAPHUAN_VIDEO || (cfg.studio ? { width: 1280, height: 720 } : { width: 640, height: 360 }),
    uploadMax: cfg.uploadMax,
  });
  L.check = check;
  check.start();

  // ------------------------------------------------------------------ slots

  function overlayText(state, slot) {
    if (state === "muted") return slot === "screen" ? T.screenStopped : T.camOffShort;
    if (state === "paused") return T.pausedAudioOnly;
    if (state === "weak-network") return T.pausedWeakNetwork;
    if (state === "reconnecting") return T.reconnectingSlot;
    if (state === "empty" && slot.startsWith("grid-")) return T.noCameraShort;  // a classroom without a camera
    return slot === "presenter-video" ? T.waitingPresenter : "";
  }

  function renderSlot(msg) {
    const tile = $(`[data-tile="${msg.slot}"]`);
    if (!tile) return;
    const state = msg.state;
    tile.dataset.participant = msg.participant_id || "";
    tile.dataset.state = state;
    const name = $("[data-name]", tile);
    if (name) name.textContent = L.nameOf(msg.participant_id);
    const overlay = $("[data-overlay]", tile);
    const video = $(`video[data-slot="${msg.slot}"]`, tile);
    if (overlay) {
      // live but no picture yet (the first frame, or a layer on its way): say so rather than show a black tile
      const waiting = state === "live" && video && !video.videoWidth;
      const text = waiting ? T.waitingPicture : overlayText(state, msg.slot);
      overlay.hidden = (state === "live" && !waiting) || !text;
      overlay.textContent = text;
      if (waiting) {
        video.addEventListener("resize", () => { if (tile.dataset.state === "live") overlay.hidden = true; }, { once: true });
      }
    }
    if (msg.slot === "screen") tile.hidden = !(state === "live" || state === "reconnecting");
    else if (msg.slot === "presenter-video") tile.hidden = cfg.studio && state === "empty";
    else if (msg.slot.startsWith("grid-")) tile.hidden = !msg.participant_id;  // a classroom without a camera too
    else tile.hidden = state === "empty";
    L.attach($(`[data-slot="${msg.slot}"]`), client.slotStream(msg.slot));
    if (!cfg.studio) {
      const screenOn = !$("[data-tile=screen]").hidden;
      $("[data-action=swap]").hidden = !screenOn;
      $("[data-theatre]").dataset.screen = screenOn ? "1" : "0";
    } else {
      const hint = $("[data-strip-hint]");
      if (hint) hint.hidden = !$("[data-tile=floor-video]").hidden;
    }
  }
  L.renderSlot = renderSlot;

  function renderAllSlots() {
    for (const msg of Object.values(client.slotState)) renderSlot(msg);
  }

  // ------------------------------------------------------------------ controls

  function tracks(kind) {
    if (!L.local) return [];
    return kind === "mic" ? L.local.getAudioTracks() : L.local.getVideoTracks();
  }

  function floorMine() { return !!client.participantId && client.floorId === client.participantId; }
  function pttActive() {
    const box = $("[data-ptt-toggle]");
    return !cfg.studio && !!box && box.checked && floorMine();
  }

  function applyPtt() {
    if (!pttActive()) return;
    const on = L.pttHeld && !L.forcedMute.has("mic");
    tracks("mic").forEach((t) => { t.enabled = on; });
  }

  function renderControls() {
    const mic = $("[data-action=mic]");
    const cam = $("[data-action=cam]");
    const micOn = tracks("mic").some((t) => t.enabled);
    const camOn = tracks("video").some((t) => t.enabled);
    const ptt = pttActive();
    if (mic) {
      mic.disabled = !L.joined || !tracks("mic").length || ptt;
      mic.setAttribute("aria-pressed", String(micOn));
      mic.innerHTML = "";
      mic.append(L.icon(micOn ? "mic" : "mic-off"), L.el("span", { text: ptt ? T.micPtt : micOn ? T.micIsOn : T.micIsOff }));
    }
    if (cam) {
      cam.disabled = !L.joined || !tracks("video").length || L.audioOnly;
      cam.setAttribute("aria-pressed", String(camOn));
      cam.innerHTML = "";
      cam.append(L.icon(camOn ? "video" : "video-off"), L.el("span", { text: camOn ? T.camIsOn : T.camIsOff }));
    }
    const selfOverlay = $("[data-self-overlay]");
    if (selfOverlay) {
      selfOverlay.hidden = camOn;
      selfOverlay.textContent = !tracks("video").length ? T.noCameraShort : T.camOffShort;
    }
    const selfState = $("[data-self-state]");
    if (selfState) selfState.replaceChildren(...(micOn ? [] : [L.icon("mic-off")]));
    const screen = $("[data-action=screen]");
    if (screen) {
      screen.disabled = !L.joined || !client.screenSender;
      screen.setAttribute("aria-pressed", String(!!L.screenTrack));
      screen.innerHTML = "";
      screen.append(L.icon(L.screenTrack ? "stop" : "screen"), L.el("span", { text: L.screenTrack ? T.stopScreen : T.shareScreen }));
    }
    const hand = $("[data-action=hand]");
    if (hand) {
      const raised = client.hands.has(client.participantId);
      hand.disabled = !L.joined || floorMine();
      hand.classList.toggle("is-raised", raised);
      hand.innerHTML = "";
      hand.append(L.icon("hand"), L.el("span", { text: raised ? T.lowerHand : T.hand }));
    }
    const ao = $("[data-action=audio-only]");
    if (ao) {
      ao.disabled = !L.joined;
      ao.setAttribute("aria-pressed", String(L.audioOnly));
      ao.innerHTML = "";
      ao.append(L.icon(L.audioOnly ? "video" : "headphones"), L.el("span", { text: L.audioOnly ? T.videoBack : T.audioOnly }));
    }
    const pttBtn = $("[data-action=ptt]");
    if (pttBtn) {
      pttBtn.hidden = !ptt;
      pttBtn.classList.toggle("is-held", L.pttHeld);
    }
    const note = $("[data-floor-note]");
    if (note) note.hidden = !floorMine();
    root.classList.toggle("lv-has-floor", floorMine());
    const take = $("[data-action=take-floor]");
    if (take) take.disabled = !L.joined || !client.floorId;
    const lockBtn = $("[data-action=lock]");
    const locked = !!(client.room && client.room.locked);
    if (lockBtn) {
      lockBtn.disabled = !L.joined;
      lockBtn.setAttribute("aria-pressed", String(locked));
      lockBtn.replaceChildren(L.icon(locked ? "unlock" : "lock"), L.el("span", { text: locked ? T.unlock : T.lock }));
    }
    $("[data-lockmark]").hidden = !(L.joined && locked);
    const muteAll = $("[data-action=mute-all]");
    if (muteAll) muteAll.disabled = !L.joined;
    $("[data-people]").textContent = String(client.participants.size + 1);
  }
  L.renderControls = renderControls;

  // ------------------------------------------------------------------ join and leave

  async function join() {
    const btn = $("[data-action=join]");
    btn.disabled = true;
    $("[data-error]").hidden = true;
    const nameInput = $("[data-guest-name]");
    if (nameInput) {
      if (!nameInput.value.trim()) {
        const box = $("[data-error]");
        box.hidden = false;
        box.textContent = T.nameNeeded;
        btn.disabled = false;
        nameInput.focus();
        return;
      }
      client.name = nameInput.value.trim();
    }
    setConn(T.connecting, "connecting");
    L.local = await check.takeStream();
    if (cfg.observer && L.local) {
      // An operator viewing as a classroom: nothing of theirs goes out.
      L.local.getTracks().forEach((t) => t.stop());
      L.local = null;
    }
    const wantAudioOnly = !!($("[data-join-audio-only]") && $("[data-join-audio-only]").checked);
    try {
      await client.connect();
    } catch (err) {
      if (client.closedReason === "meeting-ended" || (err && err.code === "meeting-ended")) {
        if (!client.endedInfo) location.reload();  // ended before we got in: the server shows the closing page
        return;  // told in the lobby: live-end.js shows the closing page
      }
      if (client.closedReason || (err && err.code === "refused")) {
        ended(T.notAdmitted, T[client.closedReason || "refused"] || L.localMessage(client.closedMessage) || err.message);
        return;
      }
      setConn(T.closed, "closed");
      showView("check");
      const box = $("[data-error]");
      box.hidden = false;
      box.textContent = (err && err.message) || String(err);
      btn.disabled = false;
      check.open();
      return;
    }
    L.joined = true;
    showView("stage");
    // The studio opens on the hands panel now, not after publishing: publishing can take seconds on a busy
    // machine, and a panel the presenter opens meanwhile (the chat with viewers' questions) must stay open.
    if (cfg.studio) L.setTab("hands");
    setConn(T.connected, "connected");
    L.attach($("[data-self]"), L.local && L.local.getVideoTracks().length ? L.local : null);
    try {
      if (L.local && cfg.canPublish) {
        // simulcast: the presenter's camera (studio) in up to 3 layers, a classroom's in up to 2 (fewer for a small
        // capture: protocol.js), the screen in 2
        await client.publish(L.local, { screenSlot: cfg.studio, videoCodec: cfg.videoCodec === "H264" ? "video/H264" : "video/VP8",
          cameraLayers: cfg.studio ? 3 : 2, screenLayers: 2 });
      }
    } catch (err) {
      L.error(err);
    }
    if (!L.local && !cfg.observer) L.toast(check.cameraError ? `${check.cameraError} ${T.canStillWatch}` : T.noCamera, "warn");
    if (wantAudioOnly) await setAudioOnly(true);
    renderControls();
    renderAllSlots();
    root.dispatchEvent(new CustomEvent("live:joined"));
  }

  async function setAudioOnly(on) {
    await client.audioOnly(on);
    L.audioOnly = on;
    // A weak link also stops sending our camera; it comes back with the video.
    if (on) {
      L.camBeforeAudioOnly = tracks("video").some((t) => t.enabled);
      tracks("video").forEach((t) => { t.enabled = false; });
    } else if (L.camBeforeAudioOnly) {
      tracks("video").forEach((t) => { t.enabled = true; });
    }
    if (client.participantId && client.local && tracks("video").length) {
      client.mute(client.participantId, "camera", on).catch(() => {});
    }
    root.classList.toggle("lv-audio-only", on);
    $("[data-weak-banner]").hidden = true;
    const notice = $("[data-audio-only-banner]");
    if (notice) notice.hidden = !on;
    renderControls();
    root.dispatchEvent(new CustomEvent("live:audio-only", { detail: { enabled: on } }));
  }
  L.setAudioOnly = setAudioOnly;

  async function toggleScreen() {
    const tile = $("[data-tile=my-screen]");
    if (L.screenTrack) {
      const t = L.screenTrack;
      L.screenTrack = null;
      t.stop();
      await client.setScreen(null);
      if (tile) tile.hidden = true;
    } else {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
      const track = s.getVideoTracks()[0];
      if ("contentHint" in track) track.contentHint = "detail";
      L.screenTrack = track;
      track.addEventListener("ended", () => { if (L.screenTrack === track) toggleScreen().catch(L.error); });
      await client.setScreen(track);
      if (tile) {
        tile.hidden = false;
        L.attach($("[data-my-screen]"), s);
      }
    }
    renderControls();
  }

  function toggleTrack(kind) {
    const list = tracks(kind === "mic" ? "mic" : "video");
    if (!list.length) return;
    const on = !list.every((t) => t.enabled);
    if (on && L.forcedMute.has(kind === "mic" ? "mic" : "camera")) {
      L.toast(kind === "mic" ? T.micForced : T.camForced, "warn");
      return;
    }
    list.forEach((t) => { t.enabled = on; });
    renderControls();
  }

  // ------------------------------------------------------------------ recording (everyone sees it)

  // The room is recorded while client.recording (a `recording` event, or a participant of role "recorder"
  // for a late joiner): a "● Recording" chip in the head and, once per recording, the notice that
  // personal-data rules require.
  function renderRecording() {
    const inRoom = L.joined && root.dataset.view === "stage";
    const on = inRoom && client.recording;
    if (L.recordingShown && !on && inRoom) L.toast(T.recordingStopped, "info", "rec");
    L.recordingShown = on;
    $("[data-recmark]").hidden = !on;
    root.classList.toggle("lv-recording", on);
    const notice = $("[data-rec-notice]");
    if (!on) {
      notice.hidden = true;
      if (!client.recording) L.noticeSeen = false;  // a later recording is announced again
    } else if (!L.noticeSeen) {
      L.noticeSeen = true;
      notice.hidden = false;
    }
    root.dispatchEvent(new CustomEvent("live:recording", { detail: { recording: on } }));
  }
  L.renderRecording = renderRecording;
  for (const type of ["joined", "participant-joined", "participant-left"]) client.addEventListener(type, renderRecording);
  client.addEventListener("recording", renderRecording);
  root.addEventListener("live:joined", renderRecording);

  // ------------------------------------------------------------------ events from the room

  client.addEventListener("track", (e) => {
    L.attach($(`[data-slot="${e.detail.slot}"]`), e.detail.stream);
  });
  client.addEventListener("slot", (e) => renderSlot(e.detail));
  for (const type of ["participant-joined", "participant-left", "participant-state", "hand", "floor", "presenter", "joined", "locked"]) {
    client.addEventListener(type, () => { renderAllSlots(); renderControls(); });
  }
  client.addEventListener("joined", () => {
    L.handOrder = Array.from(client.hands);
  });
  client.addEventListener("hand", (e) => {
    const pid = e.detail.participant_id;
    L.handOrder = L.handOrder.filter((p) => p !== pid);
    if (e.detail.raised) L.handOrder.push(pid);
  });
  client.addEventListener("participant-left", (e) => {
    L.handOrder = L.handOrder.filter((p) => p !== e.detail.participant_id);
  });
  client.addEventListener("floor", (e) => {
    const mine = !!client.participantId && e.detail.participant_id === client.participantId;
    if (mine && !L.hadFloor && !cfg.studio) {
      L.toast(T.floorGiven, "ok", "mic");
      applyPtt();
    } else if (!mine && L.hadFloor && !cfg.studio) {
      L.toast(T.floorTaken, "info");
      const box = $("[data-ptt-toggle]");
      if (box && box.checked) tracks("mic").forEach((t) => { t.enabled = true; });
    }
    L.hadFloor = mine;
  });
  client.addEventListener("locked", (e) => {
    if (L.joined) L.toast(e.detail.locked ? T.roomLocked : T.roomUnlocked, "info");
  });
  client.addEventListener("mute-request", (e) => {
    const d = e.detail;
    if (d.muted) L.forcedMute.add(d.source); else L.forcedMute.delete(d.source);
    if (d.muted) L.toast(d.source === "mic" ? T.micMutedBy : d.source === "camera" ? T.camMutedBy : T.screenMutedBy, "warn");
    else L.toast(d.source === "mic" ? T.micUnmutedBy : T.camUnmutedBy, "ok");
    renderControls();
  });
  client.addEventListener("lobby", (e) => {
    showView("lobby");
    setConn(T.waiting, "connecting");
    $("[data-lobby-msg]").textContent = T.lobbyText;
    void e;
  });
  // The socket or only the media connections are recovering (protocol.js, docs/protocol.md "Recovery").
  client.addEventListener("reconnecting", () => { if (L.joined) setConn(T.reconnecting, "reconnecting"); });
  client.addEventListener("reconnected", async (e) => {
    if (!L.joined) return;
    setConn(T.connected, "connected");
    if (!e.detail.media) {
      if (L.audioOnly) client.audioOnly(true).catch(() => {});
      if (L.screenTrack) client.setScreen(L.screenTrack).catch(() => {});
    }
    renderControls();
  });
  client.addEventListener("closed", (e) => {
    const reason = e.detail.reason;
    if (["replaced", "logout", "password-changed", "password-reset", "disabled", "link-revoked", "removed",
      "refused", "too-many-connections", "flooding"].includes(reason)) {
      L.joined = false;
      ended(reason === "refused" ? T.notAdmitted : T.endedTitle, T[reason] || L.localMessage(e.detail.message));
    } else if (reason === "room-closed") {
      L.joined = false;
      ended(T.endedTitle, T.roomClosed);
    }
  });

  // ------------------------------------------------------------------ push to talk

  function pttPress(down) {
    if (!pttActive() || L.pttHeld === down) return;
    L.pttHeld = down;
    applyPtt();
    renderControls();
  }
  // Space talks anywhere but in text fields (also over a focused button or checkbox, which it must not press).
  const typing = (t) => t.closest && t.closest("input[type=text], textarea, select, [contenteditable]");
  document.addEventListener("keydown", (ev) => {
    if (ev.code !== "Space" || !pttActive() || typing(ev.target)) return;
    ev.preventDefault();
    if (!ev.repeat) pttPress(true);
  });
  document.addEventListener("keyup", (ev) => {
    if (ev.code !== "Space" || typing(ev.target)) return;
    if (L.pttHeld) ev.preventDefault();
    pttPress(false);
  });
  const pttBtn = $("[data-action=ptt]");
  if (pttBtn) {
    pttBtn.addEventListener("pointerdown", (ev) => { ev.preventDefault(); pttPress(true); });
    for (const t of ["pointerup", "pointerleave", "pointercancel"]) pttBtn.addEventListener(t, () => pttPress(false));
  }
  const pttBox = $("[data-ptt-toggle]");
  if (pttBox) {
    pttBox.addEventListener("change", () => {
      L.pttHeld = false;
      if (pttActive()) applyPtt();
      else if (!L.forcedMute.has("mic")) tracks("mic").forEach((t) => { t.enabled = true; });
      renderControls();
    });
  }
  window.addEventListener("blur", () => pttPress(false));

  // ------------------------------------------------------------------ clicks

  root.addEventListener("click", async (ev) => {
    const tab = ev.target.closest("[data-tab]");
    if (tab) { L.setTab(tab.dataset.tab); return; }
    const button = ev.target.closest("[data-action]");
    if (!button || button.disabled) return;
    const action = button.dataset.action;
    try {
      switch (action) {
        case "join": await join(); break;
        case "test-speaker": check.playTone(); break;
        case "netcheck": await check.checkNetwork(); break;
        case "hand": await client.raiseHand(!client.hands.has(client.participantId)); break;
        case "take-floor": await client.giveFloor(null); break;
        case "cam": toggleTrack("cam"); break;
        case "mic": toggleTrack("mic"); break;
        case "screen": await toggleScreen(); break;
        case "audio-only": await setAudioOnly(!L.audioOnly); break;
        case "video-back": await setAudioOnly(false); break;
        case "weak-accept": await setAudioOnly(true); break;
        case "weak-dismiss":
          $("[data-weak-banner]").hidden = true;
          root.dispatchEvent(new CustomEvent("live:weak-dismissed"));
          break;
        case "swap": {
          const th = $("[data-theatre]");
          th.dataset.swap = th.dataset.swap === "1" ? "0" : "1";
          break;
        }
        case "toggle-side": {
          const hidden = root.classList.toggle("lv-side-hidden");
          button.setAttribute("aria-pressed", String(!hidden));
          root.dispatchEvent(new CustomEvent("live:tab", { detail: { tab: hidden ? null : "chat" } }));
          break;
        }
        case "fullscreen":
          if (document.fullscreenElement) await document.exitFullscreen(); else await root.requestFullscreen();
          break;
        case "leave":
          // presenters and operators choose between leaving and ending the meeting for everyone (live-end.js)
          if (L.chooseLeave ? await L.chooseLeave() : await L.confirm(T.leaveTitle, T.leaveText, T.leave)) {
            L.joined = false;
            await client.leave();
            ended(T.leftTitle, "");
          }
          break;
        case "leave-lobby":
          client.close();
          ended(T.leftTitle, "");
          break;
        case "reload": location.reload(); break;
        case "rec-notice-ok": $("[data-rec-notice]").hidden = true; break;
        default: break;
      }
    } catch (err) {
      if (action === "join") return;
      if (err && err.name === "NotAllowedError" && action === "screen") L.toast(T.screenRefused, "warn");
      else L.error(err);
    }
  });

  document.addEventListener("fullscreenchange", () => {
    const b = $("[data-action=fullscreen]");
    b.replaceChildren(L.icon("full"), L.el("span", { text: document.fullscreenElement ? T.exitFullscreen : T.fullscreen }));
  });

  showView("check");
  renderControls();
})();
