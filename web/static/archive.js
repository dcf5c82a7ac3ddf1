// archive.js: the library of recordings (/archive: one entry per meeting, its parts inside) and the player
// (/archive/{id}, with the other parts of its meeting; #t=<seconds> starts there).
// Data comes from /api/v1/recordings; recordings still being made are polled every 2 s (state, percentage).
// Operators publish through a form that says who will see the recording (its audience, with counts).
(function () {
  "use strict";
  const T = JSON.parse(document.getElementById("archive-text").textContent);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function clock(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  function size(bytes) {
    if (bytes >= 1e9) return taphuanFormat.formatNumber(bytes / 1e9, 1) + " GB";
    if (bytes >= 1e6) return taphuanFormat.formatNumber(bytes / 1e6, 0) + " MB";
    return Math.max(1, Math.round(bytes / 1e3)) + " kB";
  }

  function when(iso) {
    return taphuanFormat.formatDateTime(iso);
  }

  function stateBadge(r) {
    const badge = el("span", { class: "rec-state rec-" + r.state }, T[r.state] || r.state);
    if (r.state === "processing") badge.append(" " + r.progress + "%");
    return badge;
  }

  async function api(method, url, body) {
    const resp = await fetch(url, {
      method, credentials: "same-origin",
      headers: Object.assign({ "X-CSRF-Token": csrf, "Accept": "application/json" },
        body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!resp.ok && resp.status !== 204) {
      let message = resp.statusText;
      try { message = (await resp.json()).error.message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return resp.status === 204 ? null : resp.json();
  }

  // ------------------------------------------------------------------------------ publish form
  // Publishing says who will see the recording: the operator picks the audience (learners enrolled in the
  // program, also those of the meeting's units, or every learner) and sees how many learners each one reaches.
  const AUDIENCES = ["enrolled", "units", "all"];

  function learners(n) { return `${n} ${n === 1 ? T.learner : T.learners}`; }

  async function publishForm(r, done) {
    let info;
    try { info = await api("GET", `/api/v1/recordings/${r.id}/audience`); } catch (e) { alert(e.message); return; }
    const counts = Object.fromEntries(info.options.map((o) => [o.audience, o.learners]));
    const who = el("p", { class: "publish-who", "data-publish-who": "", role: "status", "aria-live": "polite" });
    const warn = el("p", { class: "publish-warn", "data-publish-warn": "", hidden: true });
    const options = AUDIENCES.map((a) => el("label", { class: "publish-option" },
      el("input", { type: "radio", name: "audience", value: a, checked: a === info.audience }),
      el("span", { class: "publish-option-text" }, el("strong", {}, T["aud_" + a]), el("small", { class: "muted" }, T["aud_" + a + "_hint"])),
      el("span", { class: "publish-count", "data-count": a }, learners(counts[a]))));
    const dialog = el("dialog", { class: "publish-dialog", "data-publish-form": r.id, "aria-labelledby": "publish-title" });
    const form = el("form", { method: "dialog" },
      el("h2", { id: "publish-title" }, T.publish_title),
      el("p", { class: "publish-rec muted" }, r.title),
      el("fieldset", { class: "publish-options" }, el("legend", {}, T.audience), ...options),
      who, warn,
      el("div", { class: "btn-row publish-actions" },
        el("button", { type: "submit", class: "btn btn-primary", "data-publish-confirm": "" }, T.publish),
        el("button", { type: "button", class: "btn btn-ghost", onclick: () => dialog.close() }, T.cancel)));
    const chosen = () => form.querySelector("input[name=audience]:checked").value;
    function refresh() {
      const a = chosen();
      who.replaceChildren(el("strong", {}, T.who_sees + " "), learners(counts[a]), " — " + T["aud_" + a].toLowerCase());
      warn.hidden = counts[a] > 0;
      warn.replaceChildren(a === "enrolled" ? T.none_enrolled : T.none_reached);
      if (a === "enrolled" && r.program_id) {
        warn.append(" ", el("a", { href: `/study/${r.program_id}/people` }, T.enrol_link));
      }
    }
    form.addEventListener("change", refresh);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api("PATCH", `/api/v1/recordings/${r.id}`, { published: true, audience: chosen() });
        dialog.close();
        done();
      } catch (err) { warn.hidden = false; warn.textContent = err.message; }
    });
    dialog.append(form);
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    refresh();
    dialog.showModal();
  }

  function operatorButtons(r, done) {
    const box = el("span", { class: "btn-row" });
    if (r.state === "ready") {
      box.append(el("button", {
        type: "button", class: "btn btn-secondary btn-sm", "data-publish": r.id,
        onclick: async () => {
          if (!r.published) { publishForm(r, done); return; }
          try { await api("PATCH", `/api/v1/recordings/${r.id}`, { published: false }); done(); } catch (e) { alert(e.message); }
        },
      }, r.published ? T.unpublish : T.publish_more));
      if (r.published) {
        box.append(el("button", { type: "button", class: "btn btn-ghost btn-sm", "data-audience-change": r.id,
          onclick: () => publishForm(r, done) }, T.change_audience));
      }
    }
    if (r.state === "ready" || r.state === "failed") {
      box.append(el("button", {
        type: "button", class: "btn btn-danger-ghost btn-sm", "data-delete": r.id,
        onclick: async () => {
          if (!window.confirm(T.confirm_delete + "\n\n" + r.title)) return;
          try { await api("DELETE", `/api/v1/recordings/${r.id}`); done(true); } catch (e) { alert(e.message); }
        },
      }, T.delete));
    }
    return box;
  }

  // ------------------------------------------------------------------------------ library
  function library(root) {
    const operator = root.dataset.operator === "true";
    const form = root.querySelector("[data-archive-filters]");
    const list = root.querySelector("[data-archive-list]");
    const status = root.querySelector("[data-archive-status]");
    const empty = root.querySelector("[data-archive-empty]");
    let timer = null, typing = null;

    // One entry per meeting (entry, below): its recordings are the entry's parts, each an item here (a pause over
    // recorder.continue_gap_minutes started the next part; a shorter one continued the same video).
    function item(r, entryTitle, many) {
      const meta = el("div", { class: "rec-meta muted" },  // the entry's line says it for a single part
        many ? el("time", { datetime: r.started_at }, when(r.started_at)) : null,
        many && r.duration ? el("span", {}, clock(r.duration)) : null, r.size ? el("span", {}, size(r.size)) : null);
      const flags = el("div", { class: "rec-flags" }, stateBadge(r),
        r.recovered ? el("span", { class: "rec-flag rec-recovered", title: T.recovered }, T.recovered) : null,
        r.gaps ? el("span", { class: "rec-flag rec-gaps", title: T.gaps }, T.gaps) : null,
        r.state === "ready" ? el("span", { class: "rec-flag" + (r.published ? " rec-published" : ""), "data-audience": r.audience },
          r.published ? `${T.published_to} ${T["aud_" + r.audience].toLowerCase()}` : T.unpublished) : null,
        r.state === "failed" && r.error ? el("span", { class: "rec-error" }, r.error) : null);
      const progress = r.state === "processing"
        ? el("progress", { max: "100", value: String(r.progress), "aria-label": T.processing }) : null;
      const label = many || r.title !== entryTitle
        ? el("h4", { class: "rec-part-title" }, many ? `${T.part} ${r.part}` : "", many && r.title !== entryTitle ? " · " : "",
          r.title !== entryTitle ? r.title : "") : null;
      const chapters = r.state === "ready" && r.chapters.length ? el("details", { class: "rec-chapters" },
        el("summary", {}, `${T.chapters} (${r.chapters.length})`),
        el("ol", {}, ...r.chapters.map((c) => el("li", {}, el("a", { href: `/archive/${r.id}#t=${c.start}` },
          el("span", { class: "chapter-time" }, clock(c.start)), el("span", {}, c.title)))))) : null;
      const actions = el("div", { class: "rec-actions" },
        r.state === "ready" ? el("a", { class: "btn btn-primary btn-sm", href: `/archive/${r.id}` }, T.watch) : null,
        r.state === "ready" ? el("a", { class: "btn btn-ghost btn-sm", href: r.download_url }, T.download) : null,
        operator ? operatorButtons(r, load) : null);
      return el("li", { class: "rec-part", "data-recording": r.id, "data-state": r.state, "data-part": r.part },
        el("div", { class: "rec-body" }, label, meta, flags, progress, chapters), actions);
    }

    function entry(parts) {
      parts.sort((a, b) => a.part - b.part || a.id - b.id);
      const first = parts[0];
      const ready = parts.find((r) => r.state === "ready");
      const title = ready ? el("a", { href: `/archive/${ready.id}` }, first.title) : el("span", {}, first.title);
      const total = parts.reduce((sum, r) => sum + (r.duration || 0), 0);
      const meta = el("div", { class: "rec-meta muted" }, el("span", {}, first.program_title || ""),
        el("time", { datetime: first.started_at }, when(first.started_at)), total ? el("span", {}, clock(total)) : null,
        parts.length > 1 ? el("span", { "data-part-count": parts.length }, `${parts.length} ${T.parts}`) : null);
      return el("li", { class: "rec-item rec-entry", "data-entry": first.meeting_id === null ? `r${first.id}` : first.meeting_id,
        "data-state": parts.some((r) => r.state === "recording") ? "recording" : first.state },
        el("h3", { class: "rec-title" }, title), meta,
        el("ol", { class: "rec-parts" }, ...parts.map((r) => item(r, first.title, parts.length > 1))));
    }

    function entries(items) {
      const groups = new Map();  // newest first, as the list comes
      for (const r of items) {
        const key = r.meeting_id === null ? `r${r.id}` : `m${r.meeting_id}`;
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(r);
      }
      return [...groups.values()].map(entry);
    }

    async function load() {
      clearTimeout(timer);
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
      try {
        const items = await api("GET", "/api/v1/recordings?" + params.toString());
        const shown = entries(items);
        list.replaceChildren(...shown);
        empty.hidden = items.length > 0;
        status.textContent = shown.length ? `${shown.length} ${T.count}` : "";
        if (items.some((r) => r.state === "recording" || r.state === "processing")) timer = setTimeout(load, 2000);
      } catch (e) {
        status.textContent = T.error;
        timer = setTimeout(load, 5000);
      }
    }

    form.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(load, 250); });
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
    load();
  }

  // ------------------------------------------------------------------------------- player
  function player(root) {
    const id = root.dataset.id;
    const operator = root.dataset.operator === "true";
    const video = root.querySelector("[data-player-video]");
    const state = root.querySelector("[data-player-state]");
    const chapters = root.querySelector("[data-chapter-list]");
    const actions = document.querySelector("[data-player-actions]");
    let loaded = false;

    function showChapters(r) {
      chapters.replaceChildren(...r.chapters.map((c, i) => el("li", { class: "chapter", "data-start": c.start },
        el("button", { type: "button", class: "chapter-btn", onclick: () => { video.currentTime = c.start; video.play().catch(() => {}); } },
          el("span", { class: "chapter-time" }, clock(c.start)), el("span", { class: "chapter-title" }, c.title || String(i + 1))))));
    }

    function showOriginals(r) {
      const box = root.querySelector("[data-originals]");
      if (root.dataset.staff !== "true" || !r.originals.length) return;
      box.hidden = false;
      box.querySelector("[data-originals-list]").replaceChildren(...r.originals.map((slot) =>
        el("li", {}, el("a", { href: `/api/v1/recordings/${r.id}/originals/${slot}` }, T["slot-" + slot] || slot))));
    }

    async function showParts(r) {
      // the other parts of the meeting's entry, when it has more than one
      if (r.meeting_id === null) return;
      const parts = (await api("GET", `/api/v1/recordings?meeting_id=${r.meeting_id}`)).sort((a, b) => a.part - b.part || a.id - b.id);
      if (parts.length < 2) return;
      const nav = document.querySelector("[data-parts]");
      nav.replaceChildren(...parts.map((p) => p.id === r.id
        ? el("span", { class: "part-link is-current", "aria-current": "page" }, `${T.part} ${p.part}`)
        : el("a", { class: "part-link", href: `/archive/${p.id}` }, `${T.part} ${p.part}`)));
      nav.hidden = false;
    }

    // The HLS renditions of the recording (its live broadcast's, or made from it by the worker) when it has
    // them: hls.js picks the rendition by the measured bandwidth (Safari: its own HLS); the WebM file otherwise.
    // The original WebM stays the download.
    function attach(r) {
      if (r.hls_url && window.Hls && window.Hls.isSupported()) {
        const hls = new window.Hls({ enableWorker: false, startLevel: -1, capLevelToPlayerSize: true });
        hls.on(window.Hls.Events.LEVEL_SWITCHED, (_e, d) => {
          const l = hls.levels[d.level];
          video.dataset.level = l && l.height ? `${l.height}p` : "";
          video.title = l && l.height ? `${T.quality_auto}: ${l.height}p` : "";
        });
        hls.loadSource(r.hls_url);
        hls.attachMedia(video);
        video.dataset.hls = "hls.js";
      } else if (r.hls_url && video.canPlayType("application/vnd.apple.mpegurl")) {
        video.src = r.hls_url;
        video.dataset.hls = "native";
      } else {
        video.src = r.media_url;
      }
    }

    // Operators: the meeting's public watch link (anyone with it watches the live broadcast without a login).
    async function publicLink(r) {
      const box = root.querySelector("[data-public-link]");
      const base = `/api/v1/broadcasts/${r.meeting_id}/public-link`;
      const info = await api("GET", base);
      const draw = (l) => {
        const url = l.url ? new URL(l.url, window.location.origin).href : null;
        box.replaceChildren(el("h2", {}, T.public_link), el("p", { class: "muted small" }, T.public_hint),
          url ? el("p", {}, el("input", { type: "text", readonly: true, value: url, class: "public-url", "data-public-url": "", "aria-label": T.public_link })) : "",
          el("p", { class: "btn-row" },
            el("button", { type: "button", class: "btn btn-secondary btn-sm", "data-public-toggle": l.enabled ? "off" : "on",
              onclick: async () => { try { draw(l.enabled ? (await api("DELETE", base), { enabled: false, url: null }) : await api("PUT", base)); } catch (e) { alert(e.message); } } },
            l.enabled ? T.public_off : T.public_on),
            el("a", { class: "btn btn-ghost btn-sm", href: `/watch/${r.meeting_id}` }, T.watch_page)));
        box.hidden = false;
      };
      draw(info);
    }

    async function load() {
      const r = await api("GET", `/api/v1/recordings/${id}`);
      state.replaceChildren(stateBadge(r), r.recovered ? el("span", { class: "rec-flag rec-recovered" }, T.recovered) : "",
        r.gaps ? el("span", { class: "rec-flag rec-gaps" }, T.gaps) : "");
      actions.replaceChildren(
        r.state === "ready" ? el("a", { class: "btn btn-secondary", href: r.download_url, "data-download": "" }, T.download) : "",
        operator ? operatorButtons(r, (gone) => { if (gone) window.location.href = "/archive"; else load(); }) : "");
      if (operator && r.meeting_id !== null) publicLink(r).catch(() => {});
      if (r.state === "ready" && !loaded) {
        loaded = true;
        video.hidden = false;
        attach(r);
        video.append(el("track", { kind: "chapters", src: r.chapters_url, default: true, srclang: "vi", label: T.chapters }));
        const at = /^#t=([0-9.]+)$/.exec(window.location.hash);
        if (at) video.addEventListener("loadedmetadata", () => { video.currentTime = Number(at[1]); }, { once: true });
        showChapters(r);
        showOriginals(r);
        showParts(r).catch(() => {});
      } else if (r.state !== "ready" && r.state !== "failed") {
        setTimeout(load, 2000);
      }
    }

    video.addEventListener("timeupdate", () => {
      let current = null;
      for (const li of chapters.children) if (Number(li.dataset.start) <= video.currentTime + 0.25) current = li;
      for (const li of chapters.children) li.classList.toggle("is-current", li === current);
    });
    load().catch((e) => { state.textContent = e.message; });
  }

  const lib = document.querySelector("[data-archive]");
  if (lib) library(lib);
  const pl = document.querySelector("[data-player]");
  if (pl) player(pl);
})();
