/* Taphuan SCORM player, served by the content origin (server.learning.content), never by the site.
 * Holds the SCORM runtime (vendored scorm-again: window.API for 1.2, window.API_1484_11 for 2004) that the
 * package's SCO, framed in #sco on this same origin, finds through window.parent. It talks only to the page
 * that framed it, by postMessage to the site origin given as ?site=:
 * - to the page: {type: "taphuan-scorm-ready"} once loaded; {type: "taphuan-scorm-commit", attempt, session,
 *   seq, token, cmi, terminate} for each commit of the runtime (seq counts this session's commits; cmi holds
 *   the flattened data model, strings only);
 * - from the page: {type: "taphuan-scorm-launch", attempt, session, token, version, cmi, launch}: start the
 *   runtime from cmi and open the SCO at launch (a URL of this origin).
 * The runtime answers the SCO at once (true): the page queues and retries the commit (web/static/scorm.js).
 */
(function () {
  "use strict";

  var site = new URLSearchParams(window.location.search).get("site") || "";
  var state = null;

  function post(message) {
    if (site) window.parent.postMessage(message, site);
  }

  function scalars(data) {
    var out = {};
    Object.keys(data || {}).forEach(function (key) {
      var value = data[key];
      if (typeof value === "string" || typeof value === "number") out[key] = String(value);
    });
    return out;
  }

  function transport() {
    return {
      processHttpRequest: function (url, params, immediate, apiLog, processListeners, metadata) {
        if (!state) return { result: false, errorCode: 101 };
        state.seq += 1;
        post({
          type: "taphuan-scorm-commit", attempt: state.attempt, session: state.session, seq: state.seq,
          token: state.token, cmi: scalars(params), terminate: !!(metadata && metadata.isTerminateCommit)
        });
        return { result: true, errorCode: 0 };
      },
      updateSettings: function () {}
    };
  }

  function launch(d) {
    if (state) return;  // one attempt per player page
    var sameOrigin = false;
    try { sameOrigin = new URL(d.launch, window.location.href).origin === window.location.origin; } catch (e) { /* bad URL */ }
    if (!sameOrigin) return;
    state = { attempt: d.attempt, session: d.session, token: d.token, seq: 0 };
    var settings = {
      autocommit: true, autocommitSeconds: 20, lmsCommitUrl: "/commit", dataCommitFormat: "flattened",
      logLevel: 5, httpService: transport()
    };
    var api;
    if (d.version === "1.2") {
      api = new window.Scorm12API(settings);
      window.API = api;
    } else {
      api = new window.Scorm2004API(settings);
      window.API_1484_11 = api;
    }
    api.loadFromFlattenedJSON(d.cmi || {}, "");
    document.getElementById("sco").src = d.launch;
  }

  window.addEventListener("message", function (event) {
    if (!site || event.origin !== site || event.source !== window.parent) return;
    var d = event.data || {};
    if (d.type === "taphuan-scorm-launch") launch(d);
  });
  post({ type: "taphuan-scorm-ready" });
})();
