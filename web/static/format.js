/* Taphuan number and date formatting in the page's language and the server's timezone (plain JS, no build step).
 * The page says both on <html>: lang="vi" | "en" and data-timezone="Asia/Ho_Chi_Minh" (set by base.html from the
 * configured timezone), so a classroom PC whose clock or region differs still shows the server's times.
 * - taphuanFormat.formatNumber(value, digits = 1): "1,5" in vi, "1.5" in en; "—" for a missing value.
 * - taphuanFormat.formatTime(date | iso | ms, seconds = false): "14:05" (24 h) in the server's timezone.
 * - taphuanFormat.formatDateTime(date | iso | ms): "05/12/2026 14:05" in the server's timezone.
 * Loaded without defer in <head>, before every other script, so they may call it at once.
 */
(function () {
  "use strict";

  var root = document.documentElement;

  function locale() {
    return (root.lang || "vi") === "en" ? "en-GB" : "vi-VN";
  }

  function timeZone() {
    return root.dataset.timezone || undefined;
  }

  function toDate(value) {
    var d = value instanceof Date ? value : new Date(value);
    return isNaN(d.getTime()) ? null : d;
  }

  function formatNumber(value, digits) {
    if (value === null || value === undefined || value === "" || isNaN(value)) return "—";
    var n = digits === undefined ? 1 : digits;
    return new Intl.NumberFormat(locale(), {maximumFractionDigits: n, minimumFractionDigits: 0}).format(value);
  }

  function format(d, opts) {
    opts.timeZone = timeZone();
    try {
      return new Intl.DateTimeFormat(locale(), opts).format(d);
    } catch (e) {  // an unknown timezone in an old browser: the PC's own
      delete opts.timeZone;
      return new Intl.DateTimeFormat(locale(), opts).format(d);
    }
  }

  function formatTime(value, seconds) {
    var d = toDate(value);
    if (!d) return "";
    var opts = {hour: "2-digit", minute: "2-digit", hourCycle: "h23"};
    if (seconds) opts.second = "2-digit";
    return format(d, opts);
  }

  function formatDateTime(value) {
    var d = toDate(value);
    if (!d) return "";
    // day first, then the time, as the server writes it (Intl's vi-VN would put the time first)
    return format(d, {day: "2-digit", month: "2-digit", year: "numeric"}) + " " + formatTime(d);
  }

  window.taphuanFormat = {formatNumber: formatNumber, formatTime: formatTime, formatDateTime: formatDateTime};
})();
