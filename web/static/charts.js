// charts.js: tiny dependency-free canvas charts for Taphuan pages (no build step).
//
//   const s = new TaphuanCharts.Series(5 * 60 * 1000);      // keeps the last five minutes
//   s.push(Date.now(), 412000);                             // a null value leaves a gap
//   TaphuanCharts.sparkline(canvas, [{data: s, color: "#1463c4"}], {span: 300000});
//   TaphuanCharts.lineChart(canvas, [{data: s, color: "#1463c4", label: "Gửi"}],
//                           {span: 300000, minMax: 100000, format: TaphuanCharts.formatBitrate,
//                            thresholds: [{value: 5, color: "#dc9a00"}]});
//   TaphuanCharts.bars(canvas, [{label: "8:00", value: 42}], {color: "#178a4a"});   // e.g. attendance
//
// The canvas keeps its CSS size; the drawing follows devicePixelRatio. After each draw the canvas carries
// data-points (points drawn) and data-max (the top of the scale), handy for tests.
(function (global) {
  "use strict";

  class Series {
    constructor(maxAgeMs) {
      this.maxAge = maxAgeMs || 5 * 60 * 1000;
      this.points = [];  // [time ms, value or null]
    }

    push(t, v) {
      this.points.push([t, v === undefined ? null : v]);
      const cut = t - this.maxAge;
      let i = 0;
      while (i < this.points.length && this.points[i][0] < cut) i++;
      if (i) this.points.splice(0, i);
    }

    last() {
      for (let i = this.points.length - 1; i >= 0; i--) {
        if (this.points[i][1] !== null) return this.points[i][1];
      }
      return null;
    }

    max(from) {
      let m = null;
      for (const [t, v] of this.points) {
        if (v !== null && (from === undefined || t >= from) && (m === null || v > m)) m = v;
      }
      return m;
    }

    clear() { this.points = []; }
  }

  function pointsOf(s) {
    if (!s) return [];
    if (s instanceof Series) return s.points;
    if (Array.isArray(s.points)) return s.points;
    return Array.isArray(s) ? s : [];
  }

  // niceMax: the smallest of 1, 2, 2.5, 5 × 10^n not below v.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    const m = v / p;
    const n = m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10;
    return n * p;
  }

  function formatNumber(v, digits) {
    return taphuanFormat.formatNumber(v, digits);
  }

  function formatBitrate(bps) {
    if (bps === null || bps === undefined || isNaN(bps)) return "—";
    if (bps >= 1e6) return formatNumber(bps / 1e6, bps >= 1e7 ? 0 : 1) + " Mbit/s";
    if (bps >= 1e3) return formatNumber(bps / 1e3, 0) + " kbit/s";
    return formatNumber(bps, 0) + " bit/s";
  }

  function prepare(canvas) {
    const dpr = Math.max(1, Math.min(3, global.devicePixelRatio || 1));
    const w = Math.max(10, canvas.clientWidth || canvas.width);
    const h = Math.max(10, canvas.clientHeight || canvas.height);
    const pw = Math.round(w * dpr);
    const ph = Math.round(h * dpr);
    if (canvas.width !== pw || canvas.height !== ph) {
      canvas.width = pw;
      canvas.height = ph;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return {ctx, w, h};
  }

  function alpha(color, a) {
    const m = /^#([0-9a-f]{6})$/i.exec(color || "");
    if (!m) return color;
    const n = parseInt(m[1], 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }

  // draw: the common line chart; `axes` adds a value scale, grid lines and time marks.
  function draw(canvas, series, opts) {
    opts = opts || {};
    const axes = !!opts.axes;
    const now = opts.now || Date.now();
    const span = opts.span || 5 * 60 * 1000;
    const from = now - span;
    const format = opts.format || ((v) => formatNumber(v, 1));
    const {ctx, w, h} = prepare(canvas);
    const font = opts.font || "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    ctx.font = font;

    let top = opts.minMax || 0;
    let count = 0;
    for (const s of series) {
      for (const [t, v] of pointsOf(s.data)) {
        if (t < from || v === null) continue;
        count++;
        if (v > top) top = v;
      }
    }
    const max = opts.max || niceMax(top);
    const min = opts.min || 0;

    let labelW = 0;
    if (axes) {
      for (const v of [max, (max + min) / 2]) labelW = Math.max(labelW, ctx.measureText(format(v)).width);
    }
    const pad = axes ? {l: Math.ceil(labelW) + 8, r: 6, t: 6, b: 16} : {l: 1, r: 3, t: 3, b: 2};
    const cw = Math.max(1, w - pad.l - pad.r);
    const ch = Math.max(1, h - pad.t - pad.b);
    const x = (t) => pad.l + ((t - from) / span) * cw;
    const y = (v) => pad.t + ch - ((Math.min(Math.max(v, min), max) - min) / (max - min)) * ch;

    // Background bands (e.g. amber above 5 %, red above 15 %).
    for (const band of opts.bands || []) {
      if (band.from >= max) continue;
      const y1 = y(Math.min(band.to === undefined ? max : band.to, max));
      const y0 = y(Math.max(band.from, min));
      ctx.fillStyle = band.color;
      ctx.fillRect(pad.l, y1, cw, y0 - y1);
    }

    if (axes) {
      ctx.strokeStyle = "#e2e7ed";
      ctx.lineWidth = 1;
      ctx.fillStyle = "#56636f";
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const v of [min, (max + min) / 2, max]) {
        const yy = Math.round(y(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(pad.l, yy);
        ctx.lineTo(pad.l + cw, yy);
        ctx.stroke();
        if (v !== min) ctx.fillText(format(v), pad.l - 5, yy);
      }
      ctx.textBaseline = "alphabetic";
      ctx.textAlign = "left";
      const ago = span < 120000 ? Math.round(span / 1000) + " s" : Math.round(span / 60000) + " min";
      ctx.fillText(opts.spanLabel || "−" + ago, pad.l, h - 3);
      ctx.textAlign = "right";
      ctx.fillText(opts.nowLabel || "0", pad.l + cw, h - 3);
    } else {
      ctx.strokeStyle = "#e2e7ed";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(pad.l, h - pad.b - 0.5);
      ctx.lineTo(pad.l + cw, h - pad.b - 0.5);
      ctx.stroke();
    }

    for (const th of opts.thresholds || []) {
      if (th.value > max || th.value < min) continue;
      const yy = Math.round(y(th.value)) + 0.5;
      ctx.save();
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = th.color || "#dc9a00";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(pad.l, yy);
      ctx.lineTo(pad.l + cw, yy);
      ctx.stroke();
      ctx.restore();
    }

    for (const s of series) {
      const pts = pointsOf(s.data).filter(([t]) => t >= from);
      if (!pts.length) continue;
      const color = s.color || "#1463c4";
      const runs = [];
      let run = [];
      for (const [t, v] of pts) {
        if (v === null) {
          if (run.length) runs.push(run);
          run = [];
        } else {
          run.push([x(t), y(v)]);
        }
      }
      if (run.length) runs.push(run);
      for (const r of runs) {
        if (s.fill !== false) {
          ctx.beginPath();
          ctx.moveTo(r[0][0], pad.t + ch);
          for (const [px, py] of r) ctx.lineTo(px, py);
          ctx.lineTo(r[r.length - 1][0], pad.t + ch);
          ctx.closePath();
          ctx.fillStyle = alpha(color, s.fillAlpha || 0.14);
          ctx.fill();
        }
        ctx.beginPath();
        r.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
        ctx.strokeStyle = color;
        ctx.lineWidth = s.width || (axes ? 2 : 1.5);
        ctx.lineJoin = "round";
        ctx.stroke();
      }
      const lastRun = runs[runs.length - 1];
      if (lastRun) {
        const [lx, ly] = lastRun[lastRun.length - 1];
        ctx.beginPath();
        ctx.arc(lx, ly, axes ? 3 : 2, 0, Math.PI * 2);
        ctx.fillStyle = color;
        ctx.fill();
      }
    }
    canvas.dataset.points = String(count);
    canvas.dataset.max = String(max);
    return {max, points: count};
  }

  function sparkline(canvas, series, opts) {
    return draw(canvas, series, Object.assign({}, opts, {axes: false}));
  }

  function lineChart(canvas, series, opts) {
    return draw(canvas, series, Object.assign({}, opts, {axes: true}));
  }

  // bars: a simple bar chart of labelled values (attendance per day, per classroom…).
  function bars(canvas, items, opts) {
    opts = opts || {};
    const {ctx, w, h} = prepare(canvas);
    ctx.font = opts.font || "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    const format = opts.format || ((v) => formatNumber(v, 0));
    const max = opts.max || niceMax(Math.max(0, ...items.map((i) => i.value || 0)));
    const pad = {l: 4, r: 4, t: 14, b: 16};
    const n = Math.max(1, items.length);
    const slot = (w - pad.l - pad.r) / n;
    const bw = Math.max(2, slot * 0.7);
    items.forEach((item, i) => {
      const v = Math.max(0, item.value || 0);
      const bh = (v / max) * (h - pad.t - pad.b);
      const bx = pad.l + i * slot + (slot - bw) / 2;
      ctx.fillStyle = item.color || opts.color || "#1463c4";
      ctx.fillRect(bx, h - pad.b - bh, bw, bh);
      ctx.fillStyle = "#3b4754";
      ctx.textAlign = "center";
      if (slot > 24) ctx.fillText(format(v), bx + bw / 2, h - pad.b - bh - 3);
      if (item.label && slot > 24) ctx.fillText(String(item.label), bx + bw / 2, h - 3);
    });
    canvas.dataset.points = String(items.length);
    canvas.dataset.max = String(max);
    return {max, points: items.length};
  }

  global.TaphuanCharts = {Series, draw, sparkline, lineChart, bars, niceMax, formatNumber, formatBitrate};
})(window);
