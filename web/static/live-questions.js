// live-questions.js: the viewers' questions above the studio's chat (shown while any waits; a badge on the Chat
// tab counts them): questions from the live broadcast's watch page
// (docs/protocol.md, Live broadcast questions). Presenters and operators approve a question into the room's chat,
// answer it (the viewer sees the answer on the watch page) or dismiss it; every decision reaches every moderator,
// so a question handled elsewhere leaves this queue too.
(function () {
  "use strict";
  const L = window.TaphuanLive;
  const { client, T, $, root } = L;
  const pending = new Map();  // id -> question

  function card(q) {
    const li = L.el("li", { class: "lv-question", "data-question": String(q.id) },
      L.el("div", { class: "lv-question-head" },
        L.el("b", { text: q.name || T.qAnonymous }), L.el("small", { class: "lv-muted", text: L.time(q.asked_at) })),
      L.el("p", { class: "lv-question-text", text: q.text }),
      L.el("div", { class: "lv-row" },
        L.button("question-approve", T.qApprove, { class: "lv-btn lv-btn-sm lv-btn-primary" }, "chat"),
        L.button("question-answer", T.qAnswer, {}, null),
        L.button("question-dismiss", T.qDismiss, { class: "lv-btn lv-btn-sm lv-btn-danger-ghost" }, null)));
    return li;
  }

  function render() {
    const list = $("[data-questions]");
    list.replaceChildren(...Array.from(pending.values()).map(card));
    $("[data-questions-box]").hidden = pending.size === 0;
    const badge = $("[data-badge=questions]");
    badge.hidden = pending.size === 0;
    badge.textContent = String(pending.size);
  }

  function answerForm(li, id) {
    if (li.querySelector("form")) return;
    const input = L.el("textarea", { rows: 2, maxLength: 2000, "aria-label": T.qAnswerPrompt, placeholder: T.qAnswerPrompt });
    const form = L.el("form", { class: "lv-question-answer", "data-answer-form": "" }, input,
      L.el("button", { type: "submit", class: "lv-btn lv-btn-sm lv-btn-primary", text: T.qSend }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      try { await client.answerQuestion(id, text); } catch (err) { L.error(err); }
    });
    li.append(form);
    input.focus();
  }

  root.addEventListener("click", async (ev) => {
    const b = ev.target.closest("[data-action^=question-]");
    if (!b) return;
    const li = b.closest("[data-question]");
    const id = Number(li.dataset.question);
    try {
      if (b.dataset.action === "question-approve") await client.approveQuestion(id);
      else if (b.dataset.action === "question-dismiss") await client.dismissQuestion(id);
      else answerForm(li, id);
    } catch (err) { L.error(err); }
  });

  client.addEventListener("broadcast-questions", (e) => {
    for (const q of e.detail.questions) pending.set(q.id, q);
    render();
  });
  client.addEventListener("broadcast-question", (e) => {
    const q = e.detail.question;
    if (q.state === "pending") {
      const fresh = !pending.has(q.id);
      pending.set(q.id, q);
      if (fresh) L.toast(`${T.qNew}: ${q.text.slice(0, 80)}`, "info", "chat");
    } else {
      pending.delete(q.id);
    }
    render();
  });
  render();
})();
