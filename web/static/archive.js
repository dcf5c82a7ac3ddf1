// archive.js: the library of recordings (/archive) and the player (/archive/{id}).
// Data comes from /api/v1/recordings; recordings still being made are polled every 2 s (state, percentage).
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

  function operatorButtons(r, done) {
    const box = el("span", { class: "btn-row" });
    if (r.state === "ready") {
      box.append(el("button", {
        type: "button", class: "btn btn-secondary btn-sm", "data-publish": r.id,
        onclick: async () => { try { await api("PATCH", `/api/v1/recordings/${r.id}`, { published: !r.published }); done(); } catch (e) { alert(e.message); } },
      }, r.published ? T.unpublish : T.publish));
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

    function item(r) {
      const meta = el("div", { class: "rec-meta muted" },
        el("span", {}, r.program_title || ""), el("time", { datetime: r.started_at }, when(r.started_at)),
        r.duration ? el("span", {}, clock(r.duration)) : null, r.size ? el("span", {}, size(r.size)) : null);
      const flags = el("div", { class: "rec-flags" }, stateBadge(r),
        r.recovered ? el("span", { class: "rec-flag rec-recovered", title: T.recovered }, T.recovered) : null,
        r.gaps ? el("span", { class: "rec-flag rec-gaps", title: T.gaps }, T.gaps) : null,
        r.state === "ready" ? el("span", { class: "rec-flag" + (r.published ? " rec-published" : "") },
          r.published ? T.published : T.unpublished) : null,
        r.state === "failed" && r.error ? el("span", { class: "rec-error" }, r.error) : null);
      const progress = r.state === "processing"
        ? el("progress", { max: "100", value: String(r.progress), "aria-label": T.processing }) : null;
      const title = r.state === "ready" ? el("a", { href: `/archive/${r.id}` }, r.title) : el("span", {}, r.title);
      const actions = el("div", { class: "rec-actions" },
        r.state === "ready" ? el("a", { class: "btn btn-primary btn-sm", href: `/archive/${r.id}` }, T.watch) : null,
        r.state === "ready" ? el("a", { class: "btn btn-ghost btn-sm", href: r.download_url }, T.download) : null,
        operator ? operatorButtons(r, load) : null);
      return el("li", { class: "rec-item", "data-recording": r.id, "data-state": r.state },
        el("div", { class: "rec-body" }, el("h3", { class: "rec-title" }, title), meta, flags, progress), actions);
    }

    async function load() {
      clearTimeout(timer);
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
      try {
        const items = await api("GET", "/api/v1/recordings?" + params.toString());
        list.replaceChildren(...items.map(item));
        empty.hidden = items.length > 0;
        status.textContent = items.length ? `${items.length} ${T.count}` : "";
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

    async function load() {
      const r = await api("GET", `/api/v1/recordings/${id}`);
      state.replaceChildren(stateBadge(r), r.recovered ? el("span", { class: "rec-flag rec-recovered" }, T.recovered) : "",
        r.gaps ? el("span", { class: "rec-flag rec-gaps" }, T.gaps) : "");
      actions.replaceChildren(
        r.state === "ready" ? el("a", { class: "btn btn-secondary", href: r.download_url, "data-download": "" }, T.download) : "",
        operator ? operatorButtons(r, (gone) => { if (gone) window.location.href = "/archive"; else load(); }) : "");
      if (r.state === "ready" && !loaded) {
        loaded = true;
        video.hidden = false;
        video.src = r.media_url;
        video.append(el("track", { kind: "chapters", src: r.chapters_url, default: true, srclang: "vi", label: T.chapters }));
        showChapters(r);
        showOriginals(r);
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
