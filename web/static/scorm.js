/* Taphuan: play a SCORM package from the content origin and keep every commit (plain JS, site origin).
 * [data-scorm] holds the player frame. The page first sends commits left over from an earlier visit, then
 * launches the attempt (POST /api/v1/materials/<id>/scorm/launch: attempt, session, token, data model) and
 * points the frame at the content origin's player (?site=<this origin>). The player posts
 * "taphuan-scorm-ready" (answered with the launch) and "taphuan-scorm-commit" messages; a commit is checked
 * (origin, frame, attempt, token) and queued in localStorage (one queue per account), newest per attempt (a commit carries the
 * whole data model), then sent to POST /api/v1/scorm/attempts/<id>/commit with the session and CSRF token.
 * A commit answered "superseded" (the lesson was opened again on another PC or tab) asks the learner to reload.
 * When the lesson's last commit (Terminate / LMSFinish) is saved, the page says so and the next lesson is a click away.
 * Failures are retried with backoff (1 s doubling to 30 s; a 429's Retry-After), on "online", and at the next
 * visit; only answers that can never succeed (invalid data, a foreign attempt) drop a commit.
 */
(function () {
  "use strict";

  var MAX_BACKOFF = 30000;
  var root = document.querySelector("[data-scorm]");
  if (!root) return;
  // One queue per account: on a shared classroom PC, another teacher's page never sends (or drops) these commits.
  var KEY = "taphuan-scorm-queue-" + (root.dataset.user || "0");
  var frame = root.querySelector("[data-scorm-frame]");
  var statusEl = root.querySelector("[data-scorm-status]");
  var origin = root.dataset.contentOrigin;
  var material = root.dataset.material;
  var launchData = null;
  var memory = {};
  var backoff = 1000;
  var timer = null;
  var sending = false;
  var finished = false;
  var superseded = false;
  var refused = false;

  function say(name) {
    if (statusEl) statusEl.textContent = root.dataset["msg" + name] || "";
    root.dataset.state = name.toLowerCase();
  }

  function load() {
    try { return JSON.parse(window.localStorage.getItem(KEY) || "{}") || {}; } catch (e) { return Object.assign({}, memory); }
  }

  function save(queue) {
    memory = queue;
    try { window.localStorage.setItem(KEY, JSON.stringify(queue)); } catch (e) { /* full or off: memory only */ }
  }

  function newer(a, b) {
    return !b || a.session > b.session || (a.session === b.session && a.seq > b.seq);
  }

  function enqueue(commit) {
    var queue = load();
    var key = String(commit.attempt);
    if (!newer(commit, queue[key])) return;
    queue[key] = commit;
    save(queue);
    schedule(0);
  }

  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; flush(); }, ms);
  }

  function send(commit) {
    return window.taphuan.fetch("/api/v1/scorm/attempts/" + commit.attempt + "/commit", {
      method: "POST",
      body: { token: commit.token, session: commit.session, seq: commit.seq, cmi: commit.cmi, terminate: commit.terminate }
    }).then(function (r) {
      if (r.ok) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          var mine = launchData && commit.attempt === launchData.attempt_id && commit.session === launchData.session;
          return { done: true, superseded: !!(body && body.superseded && mine) };
        });
      }
      return r.json().catch(function () { return {}; }).then(function (body) {
        var code = (body && body.error && body.error.code) || "";
        if (code === "invalid" || code === "bad-token" || code === "not-found") return { done: true, failed: true };
        var after = parseInt(r.headers.get("Retry-After") || "0", 10) || (body && body.error && body.error.retry_after) || 0;
        return { done: false, status: r.status, wait: after * 1000 };
      });
    }, function () { return { done: false, status: 0, wait: 0 }; });
  }

  function flush() {
    if (sending) return Promise.resolve();
    var queue = load();
    var keys = Object.keys(queue);
    if (!keys.length) {
      if (launchData) say(superseded ? "Superseded" : (refused ? "Error" : (finished ? "Finished" : "Saved")));
      return Promise.resolve();
    }
    sending = true;
    var commit = queue[keys[0]];
    return send(commit).then(function (result) {
      sending = false;
      if (result.done) {
        var now = load();
        if (now[keys[0]] && !newer(now[keys[0]], commit)) { delete now[keys[0]]; save(now); }
        if (commit.terminate && launchData && commit.attempt === launchData.attempt_id) finished = true;
        backoff = 1000;
        refused = !!result.failed;  // until a later commit is accepted
        if (result.superseded) superseded = true;
        return flush();
      }
      say(result.status === 401 || result.status === 403 ? "Login" : (result.status === 0 ? "Offline" : "Pending"));
      var wait = Math.max(result.wait || 0, backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF);
      schedule(wait);
      return undefined;
    });
  }

  function launch() {
    var body = { sco: root.dataset.sco || "", restart: root.dataset.restart === "true" };
    return window.taphuan.fetch("/api/v1/materials/" + material + "/scorm/launch", { method: "POST", body: body })
      .then(function (r) {
        if (!r.ok) throw new Error("launch " + r.status);
        return r.json();
      }).then(function (data) {
        launchData = data;
        frame.src = data.player_url + "?site=" + encodeURIComponent(window.location.origin);
        say("Saved");
      });
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !frame || event.source !== frame.contentWindow || !launchData) return;
    var d = event.data || {};
    if (d.type === "taphuan-scorm-ready") {
      frame.contentWindow.postMessage({
        type: "taphuan-scorm-launch", attempt: launchData.attempt_id, session: launchData.session,
        token: launchData.token, version: launchData.version, cmi: launchData.cmi, launch: launchData.launch_url
      }, origin);
    } else if (d.type === "taphuan-scorm-commit") {
      if (d.attempt !== launchData.attempt_id || d.session !== launchData.session || d.token !== launchData.token) return;
      if (typeof d.seq !== "number" || typeof d.cmi !== "object" || !d.cmi) return;
      say("Pending");
      enqueue({ attempt: d.attempt, session: d.session, seq: d.seq, token: d.token, cmi: d.cmi, terminate: !!d.terminate });
    }
  });
  window.addEventListener("online", function () { backoff = 1000; schedule(0); });

  say("Loading");
  // Commits left from an earlier visit go first: the launch must resume from the newest data.
  flush().then(launch).catch(function () {
    say("Offline");
    var retry = function () { launch().catch(function () { setTimeout(retry, Math.min(backoff *= 2, MAX_BACKOFF)); }); };
    setTimeout(retry, backoff);
  });
})();
