// watch.js: the live broadcast's player page (/watch/{meeting}). State from /api/v1/broadcasts/{meeting}
// (waiting, live, ended; polled), the player (hls.js from /static/vendor, or Safari's own HLS), the rendition
// choice (automatic by bandwidth unless the viewer picks one), a heartbeat every 30 s while playing (viewers in
// attendance), and the question box (the viewer's questions and the presenters' answers, polled while any waits).
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("watch-config").textContent);
  const T = JSON.parse(document.getElementById("watch-text").textContent);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const root = document.querySelector("[data-watch]");
  const $ = (sel) => document.querySelector(sel);
  const video = $("[data-watch-video]");
  const stateBox = $("[data-watch-state]");
  const quality = $("[data-watch-quality]");
  const base = `/api/v1/broadcasts/${cfg.meetingId}`;
  const query = cfg.k ? `?k=${encodeURIComponent(cfg.k)}` : "";
  const STATE_POLL_MS = 10000;
  const QUESTION_POLL_MS = 10000;

  // The player's own random id: one viewer per browser (anonymous viewers of the public link are told apart by it).
  function viewerId() {
    const key = "taphuan-viewer";
    let id = null;
    try { id = window.localStorage.getItem(key); } catch (e) { /* private mode */ }
    if (!id || !/^[A-Za-z0-9-]{8,64}$/.test(id)) {
      id = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
        : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
      try { window.localStorage.setItem(key, id); } catch (e) { /* kept for this page only */ }
    }
    return id;
  }
  const viewer = viewerId();

  async function api(method, url, body) {
    const resp = await fetch(url, {
      method, credentials: "same-origin", cache: "no-store",
      headers: Object.assign({ "Accept": "application/json", "X-CSRF-Token": csrf }, body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!resp.ok) {
      let message = resp.statusText;
      try { message = (await resp.json()).error.message; } catch (e) { /* not JSON */ }
      const err = new Error(message);
      err.status = resp.status;
      throw err;
    }
    return resp.status === 204 ? null : resp.json();
  }

  // ------------------------------------------------------------------ player
  let hls = null;
  let playing = null;  // the master playlist being played
  let heartbeatTimer = null;

  function say(text) { stateBox.textContent = text; }

  function levelName(l) { return l.height ? `${l.height}p` : `${Math.round(l.bitrate / 1000)} kbit/s`; }

  function showLevels() {
    if (!hls) return;
    quality.replaceChildren(new Option(T.auto, "-1"));
    hls.levels.forEach((l, i) => quality.append(new Option(levelName(l), String(i))));
    quality.value = String(hls.autoLevelEnabled ? -1 : hls.currentLevel);
    $("[data-watch-controls]").hidden = false;
  }

  function play(url) {
    if (playing === url) return;
    stop();
    playing = url;
    video.hidden = false;
    say(T.buffering);
    if (window.Hls && window.Hls.isSupported()) {
      // No worker: the site's CSP allows no blob: workers. Live: the hold-back is the server's: 3 target
      // durations behind the edge (hls.js's default, 3 s with 1 s segments), or with LL-HLS playlists
      // (broadcast.low_latency) their PART-HOLD-BACK of 3 parts, reloading them blocking. Setting a hold-back here
      // would override the server's.
      hls = new window.Hls({ enableWorker: false, lowLatencyMode: true, capLevelToPlayerSize: true,
        startLevel: -1, manifestLoadingMaxRetry: 6, levelLoadingMaxRetry: 6, fragLoadingMaxRetry: 6 });
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => { showLevels(); video.play().catch(() => {}); });
      hls.on(window.Hls.Events.LEVEL_SWITCHED, (_e, d) => {
        const l = hls.levels[d.level];
        $("[data-watch-level]").textContent = l ? `${T.now}: ${levelName(l)}` : "";
      });
      hls.on(window.Hls.Events.ERROR, (_e, d) => {
        if (!d.fatal) return;
        say(T.error);
        if (d.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else setTimeout(() => { if (hls) hls.startLoad(); }, 3000);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;  // Safari: the browser's own HLS picks the rendition by bandwidth
      video.addEventListener("loadedmetadata", () => video.play().catch(() => {}), { once: true });
    } else {
      say(T.unsupported);
    }
  }

  function stop() {
    if (hls) { hls.destroy(); hls = null; }
    playing = null;
  }

  quality.addEventListener("change", () => {
    if (!hls) return;
    const n = Number(quality.value);
    hls.currentLevel = n;  // -1: automatic, by the measured bandwidth
    if (n < 0) hls.nextAutoLevel = -1;
  });

  video.addEventListener("playing", () => { say(T.playing); });
  video.addEventListener("waiting", () => { say(T.buffering); });
  video.addEventListener("ended", () => { refresh(); });  // the last segment played: the broadcast ended

  async function heartbeat() {
    if (video.paused || video.ended || !playing) return;
    try {
      const r = await api("POST", `${base}/heartbeat`, { viewer, k: cfg.k || "" });
      if (r.state !== current) refresh();
    } catch (e) { /* the next one counts */ }
  }

  // ------------------------------------------------------------------ state
  let current = null;

  function show(b) {
    current = b.state;
    $("[data-watch-badge]").hidden = b.state !== "live";
    $("[data-watch-waiting]").hidden = b.state !== "waiting";
    $("[data-watch-ended]").hidden = b.state !== "ended";
    root.dataset.state = b.state;
    if (b.state === "live" && b.master_url) {
      play(b.master_url);
    } else if (b.state === "ended") {
      stop();
      video.hidden = true;
      $("[data-watch-controls]").hidden = true;
      say(T.ended);
      if (b.archive_url) {
        $("[data-watch-archive]").hidden = false;
        $("[data-watch-archive-link]").href = b.archive_url;
      }
    } else {
      say(T.waiting);
    }
  }

  async function refresh() {
    try { show(await api("GET", base + query)); } catch (e) { say(e.message); }
  }

  // ------------------------------------------------------------------ questions
  const list = $("[data-watch-questions]");
  const askStatus = $("[data-watch-ask-status]");
  let questionTimer = null;

  function renderQuestions(items) {
    list.replaceChildren(...items.slice().reverse().map((q) => {
      const li = document.createElement("li");
      li.className = "watch-question";
      li.dataset.state = q.state;
      li.dataset.question = String(q.id);
      const p = document.createElement("p");
      p.textContent = q.text;
      const st = document.createElement("span");
      st.className = "watch-q-state";
      st.textContent = T[q.state] || q.state;
      li.append(p, st);
      if (q.state === "answered" && q.answer) {
        const a = document.createElement("p");
        a.className = "watch-answer";
        a.dataset.answer = "";
        a.textContent = `${T.answer}: ${q.answer}`;
        li.append(a);
      }
      return li;
    }));
    clearTimeout(questionTimer);
    if (items.some((q) => q.state === "pending")) questionTimer = setTimeout(loadQuestions, QUESTION_POLL_MS);
  }

  async function loadQuestions() {
    const sep = query ? "&" : "?";
    try { renderQuestions(await api("GET", `${base}/questions${query}${sep}viewer=${encodeURIComponent(viewer)}`)); } catch (e) { /* later */ }
  }

  $("[data-watch-ask]").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const text = form.elements.text.value.trim();
    if (!text) return;
    const body = { viewer, text, k: cfg.k || "" };
    if (form.elements.name) body.name = form.elements.name.value.trim();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", `${base}/questions`, body);
      form.elements.text.value = "";
      askStatus.textContent = T.sent;
      loadQuestions();
    } catch (e) { askStatus.textContent = e.message; }
    button.disabled = false;
  });

  refresh();
  loadQuestions();
  setInterval(() => { if (current !== "live") refresh(); }, STATE_POLL_MS);
  heartbeatTimer = setInterval(heartbeat, cfg.heartbeatSeconds * 1000);
  video.addEventListener("playing", () => { if (!root.dataset.counted) { root.dataset.counted = "1"; heartbeat(); } });
  window.addEventListener("pagehide", () => clearInterval(heartbeatTimer));
})();
