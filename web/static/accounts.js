// accounts.js: helpers of the account pages (confirmations come from app.js form[data-confirm]):
// - [data-toggle-password=ID]: show or hide a password field;
// - [data-copy=ID]: copy a field's value (or element's text) and say so on the button;
// - form[data-link-form]: show the classroom or the guest field for the chosen kind;
// - [data-print]: print the page (the join links' printable list);
// - select[data-role-select]: show [data-role-only=classroom] only for classroom accounts.
(function () {
  "use strict";

  function copyText(source, text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    if (source.select) source.select();
    try { document.execCommand("copy"); } catch (e) { /* the text stays selected for Ctrl+C */ }
    return Promise.resolve();
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;

    var toggle = target.closest("[data-toggle-password]");
    if (toggle) {
      var input = document.getElementById(toggle.getAttribute("data-toggle-password"));
      if (!input) return;
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      var text = show ? toggle.getAttribute("data-hide") : toggle.getAttribute("data-show");
      toggle.setAttribute("aria-label", text);
      toggle.setAttribute("title", text);
      toggle.setAttribute("aria-pressed", show ? "true" : "false");
      return;
    }

    if (target.closest("[data-print]")) {
      window.print();
      return;
    }

    var copy = target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      if (!source) return;
      var label = copy.getAttribute("data-label") || copy.textContent;
      copy.setAttribute("data-label", label);
      copyText(source, source.value || source.textContent || "").then(function () {
        copy.textContent = copy.getAttribute("data-done") || "OK";
        copy.classList.add("is-copied");
        setTimeout(function () { copy.textContent = label; copy.classList.remove("is-copied"); }, 1800);
      }, function () { if (source.select) source.select(); });
    }
  });

  function syncKind() {
    var checked = document.querySelector("form[data-link-form] input[name=kind]:checked");
    if (!checked) return;
    document.querySelectorAll("form[data-link-form] [data-kind]").forEach(function (el) {
      el.hidden = el.getAttribute("data-kind") !== checked.value;
    });
  }

  function syncRole() {
    var select = document.querySelector("select[data-role-select]");
    if (!select) return;
    document.querySelectorAll("[data-role-only]").forEach(function (el) {
      el.hidden = el.getAttribute("data-role-only") !== select.value;
    });
  }

  document.addEventListener("change", function (event) {
    var t = event.target;
    if (t instanceof HTMLInputElement && t.name === "kind") syncKind();
    if (t instanceof HTMLSelectElement && t.hasAttribute("data-role-select")) syncRole();
  });
  document.addEventListener("DOMContentLoaded", function () { syncKind(); syncRole(); });
})();
