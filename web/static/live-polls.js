// live-polls.js: quick polls. Presenters and operators ask (question + 2 to 8 choices), watch live results
// and close a poll, which shows its results to everyone; classrooms answer on a card over the stage and see the
// results beside it (above the chat), never over the presenter or the shared screen.
(function () {
  "use strict";
  const L = window.TaphuanLive;
  const { client, cfg, T, $, root } = L;
  const MAX_CHOICES = 8;
  const polls = new Map();  // id -> {id, question, choices, open, counts, answered, mine}

  function bars(p) {
    const total = Math.max(1, p.answered || 0);
    const best = Math.max(0, ...(p.counts || [0]));
    const ol = L.el("ol", { class: "lv-bars-list" });
    p.choices.forEach((choice, i) => {
      const n = (p.counts && p.counts[i]) || 0;
      const pct = Math.round((n * 100) / total);
      ol.append(L.el("li", { class: `lv-result${n > 0 && n === best ? " is-top" : ""}${p.mine === i ? " is-mine" : ""}` },
        L.el("div", { class: "lv-result-label" }, L.el("span", { text: choice }), L.el("b", { "data-count": String(n), text: `${n} · ${pct}%` })),
        L.el("div", { class: "lv-result-bar" }, L.el("span", { style: `width:${pct}%` }))));
    });
    return ol;
  }

  // ---------------------------------------------------------------- studio: ask, watch, close

  function choiceInput(value) {
    const n = $("[data-poll-choices]").children.length + 1;
    return L.el("label", { class: "lv-field lv-choice-field" },
      L.el("span", { text: `${T.choice} ${n}` }),
      L.el("input", { type: "text", maxLength: 200, value: value || "", placeholder: n === 1 ? T.choiceYes : n === 2 ? T.choiceNo : "" }));
  }

  function studioCard(p) {
    const card = L.el("article", { class: `lv-poll-card${p.open ? "" : " is-closed"}`, "data-poll": String(p.id) },
      L.el("div", { class: "lv-poll-head" },
        L.el("h3", { text: p.question }),
        L.el("span", { class: `lv-pill`, "data-level": p.open ? "2" : "3", text: p.open ? T.pollOpen : T.pollClosed })),
      bars(p),
      L.el("div", { class: "lv-poll-foot" },
        L.el("span", { class: "lv-muted", text: `${p.answered || 0} ${T.answered}` }),
        p.open ? L.button("poll-close", T.pollClose, { class: "lv-btn lv-btn-sm lv-btn-primary" }, "check") : null));
    return card;
  }

  function renderStudio(p) {
    const box = $("[data-polls]");
    const card = studioCard(p);
    const old = box.querySelector(`[data-poll="${p.id}"]`);
    if (old) old.replaceWith(card); else box.prepend(card);
  }

  function setupStudio() {
    const form = $("[data-poll-form]");
    const choices = $("[data-poll-choices]");
    const reset = () => {
      form.reset();
      choices.textContent = "";
      choices.append(choiceInput(""));
      choices.append(choiceInput(""));
    };
    reset();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const question = $("[data-poll-question]").value.trim();
      const values = Array.from(choices.querySelectorAll("input")).map((i) => i.value.trim()).filter(Boolean);
      if (!question || values.length < 2) { L.toast(T.pollNeeds, "warn"); return; }
      try {
        await client.createPoll(question, values);
        reset();
      } catch (err) { L.error(err); }
    });
    root.addEventListener("click", async (ev) => {
      const b = ev.target.closest("[data-action]");
      if (!b) return;
      if (b.dataset.action === "poll-add-choice") {
        if (choices.children.length < MAX_CHOICES) choices.append(choiceInput(""));
        b.disabled = choices.children.length >= MAX_CHOICES;
      } else if (b.dataset.action === "poll-close") {
        const id = Number(b.closest("[data-poll]").dataset.poll);
        b.disabled = true;
        try { await client.closePoll(id); } catch (err) { b.disabled = false; L.error(err); }
      }
    });
  }

  // ---------------------------------------------------------------- classroom: answer, see results

  function renderFloat(p) {
    const float = $("[data-poll-float]");
    if (!p.open) {
      if (float.dataset.poll === String(p.id)) float.hidden = true;
      renderSideResults(p);
      return;
    }
    float.textContent = "";
    float.hidden = false;
    float.dataset.poll = String(p.id);
    float.append(L.el("div", { class: "lv-poll-head" },
      L.el("span", { class: "lv-eyebrow" }, L.icon("poll"), ` ${T.pollTitle}`),
      L.el("button", { type: "button", class: "lv-x", "data-action": "poll-hide", "aria-label": T.close, text: "×" })),
    L.el("h3", { text: p.question }));
    const grid = L.el("div", { class: "lv-answers" });
    p.choices.forEach((c, i) => {
      grid.append(L.el("button", {
        type: "button", class: `lv-answer${p.mine === i ? " is-chosen" : ""}`, "data-action": "poll-answer",
        "data-choice": String(i), "aria-pressed": String(p.mine === i),
      }, L.el("b", { text: String.fromCharCode(65 + i) }), L.el("span", { text: c })));
    });
    float.append(grid, L.el("p", { class: "lv-muted", "data-poll-note": "", text: p.mine === undefined ? T.pollPick : T.pollSent }));
  }

  function renderSideResults(p) {
    const box = $("[data-poll-side]");
    box.textContent = "";
    box.hidden = false;
    box.append(L.el("div", { class: "lv-poll-head" },
      L.el("span", { class: "lv-eyebrow" }, L.icon("poll"), ` ${T.pollResults}`),
      L.el("button", { type: "button", class: "lv-x", "data-action": "poll-side-hide", "aria-label": T.close, text: "×" })),
    L.el("h3", { text: p.question }),
    L.el("div", { "data-poll-results": "" }, bars(p)),
    L.el("p", { class: "lv-muted", text: `${p.answered || 0} ${T.answered}` }));
  }

  function setupClassroom() {
    root.addEventListener("click", async (ev) => {
      const b = ev.target.closest("[data-action]");
      if (!b) return;
      const float = $("[data-poll-float]");
      if (b.dataset.action === "poll-hide") float.hidden = true;
      else if (b.dataset.action === "poll-side-hide") $("[data-poll-side]").hidden = true;
      else if (b.dataset.action === "poll-answer") {
        const p = polls.get(Number(float.dataset.poll));
        if (!p) return;
        const choice = Number(b.dataset.choice);
        try {
          await client.answerPoll(p.id, choice);
          p.mine = choice;
          renderFloat(p);
        } catch (err) { L.error(err); }
      }
    });
  }

  // ---------------------------------------------------------------- events

  client.addEventListener("poll", (e) => {
    const m = e.detail.poll;
    const p = Object.assign(polls.get(m.id) || { counts: m.choices.map(() => 0), answered: 0 }, m);
    polls.set(p.id, p);
    if (cfg.studio) renderStudio(p);
    else if (p.open) renderFloat(p);
  });
  client.addEventListener("poll-results", (e) => {
    const r = e.detail;
    const p = Object.assign(polls.get(r.poll_id) || { id: r.poll_id }, {
      id: r.poll_id, question: r.question, choices: r.choices, counts: r.counts, answered: r.answered, open: !r.closed,
    });
    polls.set(p.id, p);
    if (cfg.studio) {
      renderStudio(p);
      if (r.closed) L.toast(`${T.pollResultsShown}: ${r.question}`, "ok", "poll");
    } else if (r.closed) renderFloat(p);
  });

  if (cfg.studio) setupStudio(); else setupClassroom();
})();
