// tz.js: times drawn by the browser in the server's timezone and the page's language, not the PC's clock zone.
// The zone is <body data-timezone> (the server's configured timezone, base.html); the language is <html lang>.
//
// TaphuanTime.time(isoOrDate, {seconds})   // "14:05" (or "14:05:09") in the server's timezone
// TaphuanTime.dateTime(isoOrDate)          // "05/12/2026 14:05"
// TaphuanTime.zone()                       // "Asia/Ho_Chi_Minh" (undefined when the page does not say)
(function (global) {
  "use strict";

  function zone() { return (document.body && document.body.dataset.timezone) || undefined; }
  function locale() { return document.documentElement.lang === "en" ? "en-GB" : "vi-VN"; }
  function asDate(value) { return value instanceof Date ? value : value ? new Date(value) : new Date(); }

  function format(value, options) {
    const d = asDate(value);
    if (isNaN(d.getTime())) return "";
    try {
      return new Intl.DateTimeFormat(locale(), Object.assign({ timeZone: zone(), hour12: false }, options)).format(d);
    } catch (e) {  // an unknown zone name: the PC's zone rather than nothing
      return new Intl.DateTimeFormat(locale(), Object.assign({ hour12: false }, options)).format(d);
    }
  }

  global.TaphuanTime = {
    zone,
    time: (value, opts) => format(value, Object.assign({ hour: "2-digit", minute: "2-digit" },
      opts && opts.seconds ? { second: "2-digit" } : {})),
    dateTime: (value) => format(value, { day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit" }),
  };
})(window);
