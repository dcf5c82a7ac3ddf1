/* Taphuan calendar page: copy the subscription address; ← / → keys move to the previous / next period;
   "t" goes to today. Plain JavaScript, no build step; the page works without it. */
(function () {
  "use strict";

  function copy(button) {
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) return;
    var done = function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied") || "✓";
      setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
    } else {
      input.select();
      try { if (document.execCommand("copy")) done(); } catch (e) { /* the address stays selected */ }
    }
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-copy]");
    if (button) copy(button);
    var input = e.target.closest && e.target.closest("[data-feed-url]");
    if (input) input.select();
  });

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") return;
    var target = null;
    if (e.key === "ArrowLeft") target = document.querySelector("[data-cal-prev]");
    else if (e.key === "ArrowRight") target = document.querySelector("[data-cal-next]");
    else if (e.key === "t") target = document.querySelector("[data-cal-today]");
    if (target) { e.preventDefault(); window.location.href = target.href; }
  });
})();
