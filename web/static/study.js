/* Taphuan self-study (plain JS).
 * - video[data-study-video]: resumes at data-position and, for learners (data-track="true"), reports
 *   {item, position, duration, played} to POST /api/v1/study/watch every 15 s of playing, on pause,
 *   at the end and when the page is left; `played` counts only seconds actually played (no seeking).
 * - form[data-quiz-take]: counts the answered questions.
 * - form[data-quiz-editor]: edits a quiz (questions with 2–6 choices, correct ones ticked) and saves it
 *   as JSON to data-url (POST or PUT), then goes to data-done.
 */
(function () {
  "use strict";

  var REPORT_EVERY = 15;

  function csrfFetch(url, options) { return window.taphuan.fetch(url, options); }

  function setupVideo(video) {
    var start = parseFloat(video.dataset.position || "0");
    var track = video.dataset.track === "true";
    var played = 0;
    var sinceReport = 0;
    var last = null;
    var status = document.querySelector("[data-watch-status]");

    video.addEventListener("loadedmetadata", function () {
      if (start > 5 && video.duration && start < video.duration * 0.95) video.currentTime = start;
    });
    var lastWall = 0;
    video.addEventListener("timeupdate", function () {
      var now = video.currentTime;
      var wall = performance.now();
      if (last !== null && !video.seeking) {
        // count what was played since the last update, never more than the time that passed (no seeking)
        var step = now - last;
        var allowed = (wall - lastWall) / 1000 * (video.playbackRate || 1) + 0.3;
        if (step > 0 && step <= allowed) { played += step; sinceReport += step; }
      }
      last = now;
      lastWall = wall;
      if (track && sinceReport >= REPORT_EVERY) report(false);
    });
    video.addEventListener("play", function () { last = video.currentTime; lastWall = performance.now(); });
    video.addEventListener("seeking", function () { last = null; });
    video.addEventListener("seeked", function () { last = video.currentTime; lastWall = performance.now(); });
    video.addEventListener("pause", function () { if (track) report(false); });
    video.addEventListener("ended", function () { if (track) report(false); });
    window.addEventListener("pagehide", function () { if (track) report(true); });

    var inflight = false;
    var pending = false;
    var lastSent = -1;

    function report(leaving) {
      // one report at a time (pause and ended come together); nothing new: nothing sent
      if (inflight) { pending = true; return; }
      var position = Math.max(0, video.currentTime || 0);
      if (played === 0 && Math.abs(position - lastSent) < 0.5) return;
      var body = {
        item: video.dataset.item,
        position: position,
        duration: isFinite(video.duration) ? video.duration : 0,
        played: Math.min(played, 3600)
      };
      played = 0;
      sinceReport = 0;
      lastSent = position;
      inflight = true;
      csrfFetch("/api/v1/study/watch", { method: "POST", body: body, keepalive: !!leaving })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data || !status || !data.duration) return;
          var pct = Math.round(100 * data.watched / data.duration);
          status.textContent = (status.dataset.prefix || "") + pct + "%";
          status.classList.toggle("is-done", data.completed);
        })
        .catch(function () { /* offline: the next report carries on */ })
        .then(function () {
          inflight = false;
          if (pending) { pending = false; report(false); }
        });
    }
    window.taphuanStudy = { report: report };
  }

  function setupQuizTake(form) {
    var counter = form.querySelector("[data-answered-count]");
    var total = parseInt(counter.dataset.total, 10);
    function count() {
      var names = {};
      form.querySelectorAll("input[type=radio]:checked, input[type=checkbox]:checked").forEach(function (i) {
        names[i.name] = true;
      });
      counter.textContent = Object.keys(names).length + "/" + total + " " + counter.dataset.label;
    }
    form.addEventListener("change", count);
    count();
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function setupEditor(form) {
    var d = form.dataset;
    var data = JSON.parse(d.quiz);
    var list = form.querySelector("[data-questions]");
    var errorEl = form.querySelector("[data-error]");
    form.elements.title.value = data.title || "";
    form.elements.description.value = data.description || "";
    form.elements.pass_percent.value = data.pass_percent;
    form.elements.published.checked = !!data.published;
    form.elements.meeting_id.value = data.meeting_id ? String(data.meeting_id) : "";

    function choiceRow(qBox, text, correct) {
      var choices = qBox.querySelector(".ed-choices");
      var check = el("input", { type: "checkbox", "class": "ed-correct", "aria-label": d.lCorrect });
      check.checked = !!correct;
      var input = el("input", { type: "text", "class": "ed-choice", maxlength: "500", placeholder: d.lChoice });
      input.value = text || "";
      var remove = el("button", { type: "button", "class": "btn btn-ghost btn-sm", text: "×", "aria-label": d.lRemove });
      var row = el("div", { "class": "ed-choice-row" }, [el("label", { "class": "ed-check" }, [check, el("span", { text: d.lCorrect })]), input, remove]);
      remove.addEventListener("click", function () {
        if (choices.children.length > 2) { row.remove(); refresh(); }
      });
      choices.appendChild(row);
      refresh();
    }

    function refresh() {
      list.querySelectorAll(".ed-question").forEach(function (q, i) {
        q.querySelector(".qnum").textContent = String(i + 1);
        var n = q.querySelectorAll(".ed-choice-row").length;
        q.querySelector("[data-add-choice]").disabled = n >= 6;
      });
    }

    function addQuestion(q) {
      q = q || { text: "", choices: ["", ""], correct: [] };
      var text = el("textarea", { "class": "ed-text", rows: "2", maxlength: "2000", placeholder: d.lQuestion, "aria-label": d.lQuestion });
      text.value = q.text;
      var addChoice = el("button", { type: "button", "class": "btn btn-ghost btn-sm", "data-add-choice": "", text: "+ " + d.lAddChoice });
      var remove = el("button", { type: "button", "class": "btn btn-danger-ghost btn-sm", text: d.lRemoveQuestion });
      var box = el("section", { "class": "card ed-question" }, [
        el("div", { "class": "ed-head" }, [el("span", { "class": "qnum" }), el("strong", { text: d.lQuestion }), el("span", { "class": "spacer" }), remove]),
        text, el("div", { "class": "ed-choices" }), el("div", { "class": "ed-foot" }, [addChoice])
      ]);
      list.appendChild(box);
      q.choices.forEach(function (c, i) { choiceRow(box, c, q.correct.indexOf(i) >= 0); });
      addChoice.addEventListener("click", function () { choiceRow(box, "", false); });
      remove.addEventListener("click", function () { box.remove(); refresh(); });
      refresh();
      return box;
    }

    (data.questions.length ? data.questions : [null]).forEach(function (q) { addQuestion(q); });
    form.querySelector("[data-add-question]").addEventListener("click", function () {
      addQuestion().querySelector("textarea").focus();
    });

    function showError(msg) { errorEl.textContent = msg; errorEl.hidden = false; errorEl.scrollIntoView({ block: "center" }); }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      errorEl.hidden = true;
      var questions = [];
      var problem = "";
      list.querySelectorAll(".ed-question").forEach(function (box) {
        var choices = [];
        var correct = [];
        box.querySelectorAll(".ed-choice-row").forEach(function (row) {
          var value = row.querySelector(".ed-choice").value.trim();
          if (!value) return;
          if (row.querySelector(".ed-correct").checked) correct.push(choices.length);
          choices.push(value);
        });
        var text = box.querySelector(".ed-text").value.trim();
        if (!text || choices.length < 2) problem = problem || d.lNeedText;
        else if (!correct.length) problem = problem || d.lNeedCorrect;
        questions.push({ text: text, choices: choices, correct: correct });
      });
      if (problem) { showError(problem); return; }
      var body = {
        title: form.elements.title.value,
        description: form.elements.description.value,
        pass_percent: parseInt(form.elements.pass_percent.value || "0", 10),
        published: form.elements.published.checked,
        meeting_id: form.elements.meeting_id.value ? parseInt(form.elements.meeting_id.value, 10) : null,
        questions: questions
      };
      csrfFetch(d.url, { method: d.method, body: body }).then(function (r) {
        if (r.ok) { window.location.href = d.done; return null; }
        return r.json().then(function (b) {
          var msg = (b && b.error && b.error.message) || d.lFailed;
          var parts = msg.split(" / ");
          showError(parts.length === 2 && document.documentElement.lang === "en" ? parts[1] : parts[0]);
        });
      }).catch(function () { showError(d.lFailed); });
    });
  }

  document.querySelectorAll("video[data-study-video]").forEach(setupVideo);
  document.querySelectorAll("form[data-quiz-take]").forEach(setupQuizTake);
  document.querySelectorAll("form[data-quiz-editor]").forEach(setupEditor);
})();
