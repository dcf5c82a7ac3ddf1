// live-chat.js: the room chat: public messages, private messages to a presenter, history for late joiners,
// a character counter, deletion by presenters and operators.
(function () {
  "use strict";
  const L = window.TaphuanLive;
  const { client, cfg, T, $, $$, root } = L;
  const list = $("[data-chat-list]");
  const form = $("[data-chat-form]");
  const text = $("[data-chat-text]");
  const to = $("[data-chat-to]");
  const counter = $("[data-chat-count]");
  const limit = cfg.chatChars;
  let unread = 0;

  function visible() {
    if (cfg.studio) return L.activeTab === "chat";
    return !root.classList.contains("lv-side-hidden");
  }

  function setUnread(n) {
    unread = n;
    $$("[data-unread]").forEach((b) => { b.hidden = n === 0; b.textContent = n > 99 ? "99+" : String(n); });
  }

  function render(m) {
    const mine = m.from === client.participantId;
    const li = L.el("li", {
      class: `lv-msg${mine ? " is-mine" : ""}${m.private ? " is-private" : ""}${L.isModerator(m.from_role) ? " is-host" : ""}`,
      "data-message-id": String(m.id),
    });
    const head = L.el("div", { class: "lv-msg-head" },
      L.el("b", { class: "lv-msg-from", text: mine ? T.you : m.from_name }),
      L.el("span", { class: "lv-role", text: L.roleName(m.from_role) }));
    if (m.private) {
      const target = m.to === client.participantId ? T.you : L.nameOf(m.to);
      head.append(L.el("span", { class: "lv-private" }, L.icon("lock"), ` ${T.privateTo} ${target}`));
    }
    head.append(L.el("time", { dateTime: m.at, text: L.time(m.at) }));
    if (L.isModerator(client.role)) {
      head.append(L.el("button", { type: "button", class: "lv-msg-del", "data-action": "chat-delete", title: T.deleteMessage, "aria-label": T.deleteMessage }, L.icon("trash")));
    }
    li.append(head, L.el("p", { class: "lv-msg-text", text: m.text }));
    return li;
  }

  function add(m, quiet) {
    if (list.querySelector(`[data-message-id="${m.id}"]`)) return;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(render(m));
    $("[data-chat-empty]").hidden = true;
    if (atBottom || m.from === client.participantId) list.scrollTop = list.scrollHeight;
    if (!quiet && m.from !== client.participantId && !visible()) setUnread(unread + 1);
  }

  function recipients() {
    const keep = to.value;
    to.textContent = "";
    to.append(L.el("option", { value: "", text: T.everyone }));
    for (const [pid, p] of client.participants) {
      if (!L.isModerator(client.role) && !L.isModerator(p.role)) continue;
      const label = `${T.privateShort}: ${p.name} (${L.roleName(p.role)})`;
      to.append(L.el("option", { value: pid, text: label, selected: pid === keep }));
    }
    if (keep && !client.participants.has(keep)) to.value = "";
  }

  function count() {
    const n = text.value.length;
    counter.textContent = `${n}/${limit}`;
    counter.dataset.near = n > limit * 0.9 ? "1" : "0";
  }

  async function send() {
    const value = text.value.trim();
    if (!value) return;
    if (value.length > limit) { L.toast(T.tooLong, "warn"); return; }
    const target = to.value || null;
    text.disabled = true;
    try {
      await client.chat(value, target);
      text.value = "";
      count();
    } catch (err) {
      L.error(err);
    } finally {
      text.disabled = false;
      text.focus();
    }
  }

  client.addEventListener("chat-history", (e) => {
    list.textContent = "";
    for (const m of e.detail.messages) add(m, true);
    $("[data-chat-empty]").hidden = list.children.length > 0;
    list.scrollTop = list.scrollHeight;
  });
  client.addEventListener("chat", (e) => add(e.detail.message, false));
  client.addEventListener("chat-deleted", (e) => {
    const li = list.querySelector(`[data-message-id="${e.detail.message_id}"]`);
    if (li) li.remove();
    $("[data-chat-empty]").hidden = list.children.length > 0;
  });
  for (const type of ["joined", "participant-joined", "participant-left"]) client.addEventListener(type, recipients);

  form.addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  text.addEventListener("input", count);
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); }
  });
  root.addEventListener("live:tab", () => { if (visible()) setUnread(0); });
  list.addEventListener("click", async (ev) => {
    const del = ev.target.closest("[data-action=chat-delete]");
    if (!del) return;
    ev.stopPropagation();
    const id = Number(del.closest("[data-message-id]").dataset.messageId);
    if (!(await L.confirm(T.deleteTitle, T.deleteText, T.deleteMessage))) return;
    try { await client.deleteChat(id); } catch (err) { L.error(err); }
  });
  count();
})();
