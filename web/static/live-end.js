// live-end.js: the end of a meeting (docs/protocol.md "Ending a meeting"). Everyone: when the meeting ends for
// everyone (`meeting-ended`), the page becomes its closing page, with the link its recording will have in the
// archive. Presenters and operators (the studio): "Leave" asks whether only they leave or the meeting ends for
// everyone ("End for everyone", after a confirmation) and, once the scheduled end has passed (`meeting-ending`), a banner that says when the meeting ends by itself and extends it
// by 15 or 30 minutes (refused with the server's words when that runs into another booking).
(function () {
  "use strict";
  const L = window.TaphuanLive;
  const { client, cfg, root, $ } = L;
  const E = JSON.parse(document.getElementById("live-end-text").textContent);
  // Times come from the server in its timezone (ISO 8601 with its offset): show them as they are written.
  const hhmm = (iso) => String(iso || "").slice(11, 16);
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => (values[k] === undefined ? "" : values[k]));

  function showClosed(msg) {
    if (root.dataset.meetingEnded) return;
    root.dataset.meetingEnded = "1";
    L.joined = false;
    const text = msg.reason === "overrun" ? E.endedOverrun : msg.by ? fill(E.endedBy, { name: msg.by }) : E.endedText;
    L.ended(E.endedTitle, text);
    const banner = $("[data-ending-banner]");
    if (banner) banner.hidden = true;
    const reload = $("[data-action=reload]");
    if (reload) reload.hidden = true;  // nobody joins an ended meeting again
    const archive = $("[data-ended-archive]");
    if (archive && msg.archive_url && !cfg.guest) {  // guests do not see the archive
      $("[data-archive-link]", archive).href = msg.archive_url;
      archive.hidden = false;
    }
    client.close();
  }

  client.addEventListener("meeting-ended", (e) => showClosed(e.detail));
  client.addEventListener("closed", (e) => {
    if (e.detail.reason === "meeting-ended") showClosed(client.endedInfo || {});
  });

  if (!cfg.studio) return;

  async function endForEveryone() {
    if (await L.confirm(E.endTitle, E.endText, E.endOk)) await client.endMeeting();
  }

  // "Leave": true when only we leave (live.js leaves), false otherwise (cancelled, or the meeting is ending).
  L.chooseLeave = () => new Promise((resolve) => {
    const dlg = $("[data-leave-choice]");
    dlg.returnValue = "";
    dlg.addEventListener("close", () => {
      if (dlg.returnValue === "end") endForEveryone().catch(L.error);
      resolve(dlg.returnValue === "leave");
    }, { once: true });
    dlg.showModal();
  });

  function warn(msg) {
    const banner = $("[data-ending-banner]");
    $("[data-ending-text]", banner).textContent = fill(E.endsBy, { time: hhmm(msg.auto_end_at) });
    banner.hidden = false;
  }
  client.addEventListener("meeting-ending", (e) => warn(e.detail));
  let extending = false;  // our own extension: its reply says so (the event reaches every moderator, us too)
  client.addEventListener("meeting-extended", (e) => {
    $("[data-ending-banner]").hidden = true;
    const d = e.detail;
    if (!extending) {
      L.toast(fill(E.extendedBy, { name: d.by, time: hhmm(d.ends_at) }), "info", "clock");
    }
  });

  root.addEventListener("click", async (ev) => {
    const button = ev.target.closest("[data-action=end-meeting], [data-action=extend]");
    if (!button || button.disabled) return;
    try {
      if (button.dataset.action === "extend") {
        button.disabled = true;
        extending = true;
        try {
          const reply = await client.extendMeeting(Number(button.dataset.minutes));
          $("[data-ending-banner]").hidden = true;
          L.toast(fill(E.extendedUntil, { time: hhmm(reply.ends_at) }), "ok", "clock");
        } finally {
          button.disabled = false;
          extending = false;
        }
      } else {
        await endForEveryone();
      }
    } catch (err) {
      L.error(err);
    }
  });
})();
