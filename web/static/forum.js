/* Taphuan forum helpers (plain JS).
 * form[data-md-form]: [data-md-toggle] switches between writing and a preview of the Markdown,
 * rendered safely by the server (POST /api/v1/forum/preview); Ctrl+Enter sends the form.
 */
(function () {
  "use strict";

  function setup(form) {
    var input = form.querySelector("[data-md-input]");
    var preview = form.querySelector("[data-md-preview]");
    var toggle = form.querySelector("[data-md-toggle]");
    if (!input || !preview || !toggle) return;
    var previewLabel = toggle.textContent;

    toggle.addEventListener("click", function () {
      if (!preview.hidden) {
        preview.hidden = true;
        input.hidden = false;
        toggle.textContent = previewLabel;
        input.focus();
        return;
      }
      window.taphuan.fetch("/api/v1/forum/preview", { method: "POST", body: { text: input.value } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          preview.innerHTML = data.html || "";
          preview.hidden = false;
          input.hidden = true;
          toggle.textContent = toggle.dataset.editLabel;
        });
    });

    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
  }

  document.querySelectorAll("form[data-md-form]").forEach(setup);
  if (location.hash && /^#q\d+$/.test(location.hash)) {
    var target = document.querySelector(location.hash);
    if (target) target.classList.add("is-target");
  }
})();
