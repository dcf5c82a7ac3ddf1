/* Taphuan shared page helpers (plain JS, no build step).
 * - taphuan.fetch(url, options): fetch with the login's CSRF header and JSON by default.
 * - form[data-confirm] / a[data-confirm]: ask before submitting or following.
 * - taphuan.formatDate(iso, withTime): a date (and time) in the page's language and the server's timezone
 *   (<html data-timezone>, see format.js).
 * - [data-picker]: a filterable checkbox list (accent-insensitive search, count, select shown, clear).
 * - [data-kind-form]: show [data-kind-show="regional"] parts only for regional meetings.
 * - form[data-autosubmit]: submit when a filter changes.
 * - [data-nav-toggle]: open and close the menu on small screens.
 * - the first field with an error (.has-error) gets the focus.
 */
(function () {
  "use strict";

  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  }

  function csrfFetch(url, options) {
    options = options || {};
    var headers = new Headers(options.headers || {});
    headers.set("X-CSRF-Token", meta("csrf-token"));
    if (options.body && typeof options.body !== "string" && !(options.body instanceof FormData)) {
      options.body = JSON.stringify(options.body);
      headers.set("Content-Type", "application/json");
    }
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    options.headers = headers;
    options.credentials = "same-origin";
    return fetch(url, options);
  }

  function formatDate(iso, withTime) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    if (withTime !== false) return window.taphuanFormat.formatDateTime(d);
    var opts = { timeZone: document.documentElement.dataset.timezone || undefined, day: "2-digit", month: "2-digit", year: "numeric" };
    try {
      return new Intl.DateTimeFormat(document.documentElement.lang === "en" ? "en-GB" : "vi-VN", opts).format(d);
    } catch (e) {
      return d.toLocaleString();
    }
  }

  function fold(text) {
    return (text || "").toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/đ/g, "d");
  }

  function setupPicker(root) {
    var filter = root.querySelector("[data-picker-filter]");
    var count = root.querySelector("[data-picker-count]");
    var nomatch = root.querySelector("[data-picker-nomatch]");
    var items = Array.prototype.slice.call(root.querySelectorAll("li[data-text]"));
    items.forEach(function (li) { li.dataset.fold = fold(li.dataset.text); });

    function refresh() {
      var n = root.querySelectorAll("li input[type=checkbox]:checked").length;
      if (count) count.textContent = n + " " + (count.dataset.label || "");
      items.forEach(function (li) {
        li.classList.toggle("is-checked", li.querySelector("input").checked);
      });
    }
    function apply() {
      var q = fold(filter ? filter.value.trim() : "");
      var shown = 0;
      items.forEach(function (li) {
        var ok = !q || q.split(/\s+/).every(function (w) { return li.dataset.fold.indexOf(w) >= 0; });
        li.hidden = !ok;
        if (ok) shown += 1;
      });
      if (nomatch) nomatch.hidden = shown > 0;
    }
    function setAll(value) {
      items.forEach(function (li) { if (!li.hidden) li.querySelector("input").checked = value; });
      refresh();
    }
    if (filter) {
      filter.addEventListener("input", apply);
      filter.addEventListener("keydown", function (e) { if (e.key === "Enter") e.preventDefault(); });
    }
    root.addEventListener("change", refresh);
    var all = root.querySelector("[data-picker-all]");
    var none = root.querySelector("[data-picker-none]");
    if (all) all.addEventListener("click", function () { setAll(true); });
    if (none) none.addEventListener("click", function () { setAll(false); });
    refresh();
  }

  function setupKindForm(form) {
    function apply() {
      var checked = form.querySelector('input[name="kind"]:checked');
      var kind = checked ? checked.value : "lecture";
      form.querySelectorAll("[data-kind-show]").forEach(function (el) {
        el.hidden = el.getAttribute("data-kind-show") !== kind;
      });
    }
    form.addEventListener("change", function (e) { if (e.target.name === "kind") apply(); });
    apply();
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) e.preventDefault();
  });
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a[data-confirm]");
    if (link && !window.confirm(link.getAttribute("data-confirm"))) e.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-picker]").forEach(setupPicker);
    document.querySelectorAll("[data-kind-form]").forEach(setupKindForm);
    document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.addEventListener("change", function () { form.submit(); });
    });
    document.querySelectorAll("time[data-format]").forEach(function (t) {
      t.textContent = formatDate(t.getAttribute("datetime"), t.dataset.format !== "date");
    });
    var bad = document.querySelector(".has-error input:not([type=hidden]), .has-error select, .has-error textarea");
    if (bad) { bad.scrollIntoView({ block: "center" }); bad.focus({ preventScroll: true }); }
    var toggle = document.querySelector("[data-nav-toggle]");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var open = document.body.classList.toggle("nav-open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
  });

  window.taphuan = { fetch: csrfFetch, formatDate: formatDate, fold: fold, csrfToken: function () { return meta("csrf-token"); } };
})();
