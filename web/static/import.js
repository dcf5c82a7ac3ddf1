// import.js: upload a CSV with XMLHttpRequest (progress bar, X-CSRF-Token header) and show the result or
// every row error. Without JavaScript the form posts to /import/{kind} and the server renders the result.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_m, key) {
      return key in values ? String(values[key]) : "";
    });
  }

  function show(form, kind, text, rows) {
    var status = form.querySelector(".up-status");
    status.textContent = "";
    form.querySelectorAll(".up-note").forEach(function (n) { n.remove(); });
    if (!text) { return; }
    var box = document.createElement("div");
    box.className = kind === "ok" ? "up-note" : (kind === "info" ? "up-muted" : "up-note bad");
    box.textContent = text;
    if (rows && rows.length) {
      var list = document.createElement("ul");
      list.className = "up-errors";
      rows.forEach(function (r) {
        var item = document.createElement("li");
        item.textContent = r;
        list.appendChild(item);
      });
      box.appendChild(list);
    }
    status.appendChild(box);
  }

  function setup(form) {
    var bar = form.querySelector(".up-progress");
    var fillBar = bar.firstElementChild;
    var button = form.querySelector("button");
    var input = form.querySelector('input[type="file"]');
    form.addEventListener("submit", function (ev) {
      if (!window.XMLHttpRequest || !window.FormData || !input.files.length) { return; }
      ev.preventDefault();
      var file = input.files[0];
      if (file.size > Number(form.dataset.maxBytes)) {
        show(form, "bad", form.dataset.msgTooLarge);
        return;
      }
      var data = new FormData();
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.api);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      bar.hidden = false;
      fillBar.style.width = "0%";
      button.disabled = true;
      show(form, "info", form.dataset.msgSending);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) { fillBar.style.width = Math.round((e.loaded / e.total) * 100) + "%"; }
      };
      xhr.upload.onload = function () {
        fillBar.style.width = "100%";
        show(form, "info", form.dataset.msgChecking);
      };
      xhr.onerror = function () {
        button.disabled = false;
        bar.hidden = true;
        show(form, "bad", form.dataset.msgFailed);
      };
      xhr.onload = function () {
        button.disabled = false;
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 200 && body) {
          show(form, "ok", fill(form.dataset.msgDone, body));
          input.value = "";
        } else if (xhr.status === 422 && body && body.errors) {
          bar.hidden = true;
          show(form, "bad", form.dataset.msgErrors, body.errors.map(function (e) { return e.text || e.message; }));
        } else if (xhr.status === 413) {
          bar.hidden = true;
          show(form, "bad", form.dataset.msgTooLarge);
        } else {
          bar.hidden = true;
          show(form, "bad", (body && body.error && body.error.message) || form.dataset.msgFailed);
        }
      };
      xhr.send(data);
    });
  }

  document.querySelectorAll("form.up-import").forEach(setup);
})();
