/* Taphuan upload with a progress bar (plain JS).
 * form[data-upload]: sends the form with XMLHttpRequest (multipart, X-CSRF-Token from the meta tag),
 * shows the upload progress in [data-progress], the server's error in [data-error] (413 names the
 * limit, 415 the refused type) and goes to data-done when the file is stored. A file larger than
 * data-max-bytes is refused before sending. [data-dropzone] accepts a dropped file.
 */
(function () {
  "use strict";

  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  }

  function size(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return taphuanFormat.formatNumber(n / 1024, 1) + " KB";
    if (n < 1073741824) return taphuanFormat.formatNumber(n / 1048576, 1) + " MB";
    return taphuanFormat.formatNumber(n / 1073741824, 2) + " GB";
  }

  function setup(form) {
    var input = form.querySelector("[data-file]");
    var nameEl = form.querySelector("[data-file-name]");
    var zone = form.querySelector("[data-dropzone]");
    var box = form.querySelector("[data-progress]");
    var bar = box.querySelector(".meter");
    var fill = bar.querySelector("span");
    var text = form.querySelector("[data-progress-text]");
    var errorEl = form.querySelector("[data-error]");
    var submit = form.querySelector("[data-submit]");
    var max = parseInt(form.dataset.maxBytes || "0", 10);

    function showError(message) {
      errorEl.textContent = message;
      errorEl.hidden = false;
      submit.disabled = false;
      box.hidden = true;
    }

    function chosen() {
      var f = input.files && input.files[0];
      errorEl.hidden = true;
      if (nameEl) nameEl.textContent = f ? f.name + " · " + size(f.size) : nameEl.dataset.empty || nameEl.textContent;
      zone.classList.toggle("has-file", !!f);
    }
    if (nameEl) nameEl.dataset.empty = nameEl.textContent;
    input.addEventListener("change", chosen);

    ["dragenter", "dragover"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("is-over"); });
    });
    ["dragleave", "drop"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.remove("is-over"); });
    });
    zone.addEventListener("drop", function (e) {
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        chosen();
      }
    });

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var f = input.files && input.files[0];
      if (!f) { input.focus(); return; }
      if (max && f.size > max) { showError(form.dataset.tooLarge); return; }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-CSRF-Token", meta("csrf-token"));
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (ev) {
        if (!ev.lengthComputable) return;
        var pct = Math.round(100 * ev.loaded / ev.total);
        fill.style.width = pct + "%";
        bar.setAttribute("aria-valuenow", String(pct));
        text.textContent = pct + "% · " + size(ev.loaded) + " / " + size(ev.total);
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          fill.style.width = "100%";
          window.location.href = form.dataset.done;
          return;
        }
        var message = form.dataset.failed;
        try {
          var body = JSON.parse(xhr.responseText);
          if (body && body.error && body.error.message) message = body.error.message;
        } catch (err) { /* not JSON */ }
        var parts = message.split(" / ");
        showError(parts.length === 2 && document.documentElement.lang === "en" ? parts[1] : parts[0]);
      });
      xhr.addEventListener("error", function () { showError(form.dataset.failed); });
      box.hidden = false;
      errorEl.hidden = true;
      submit.disabled = true;
      fill.style.width = "0%";
      text.textContent = "0%";
      xhr.send(new FormData(form));
    });
  }

  document.querySelectorAll("form[data-upload]").forEach(setup);
})();
