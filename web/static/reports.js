// reports.js: draws the charts of the report pages with TaphuanCharts (charts.js) from the JSON the page embeds
// in <script id="report-charts">, redraws them when the window is resized, and prints the monthly report.
//
// A chart is {id, type: "bars" | "line", format: "int" | "pct", color, items: [{label, title, value, color}]}
// for bars, or {points: [[ms, value]], start, end, startLabel, endLabel, minMax} for a line over time.
(function () {
  "use strict";

  const C = window.TaphuanCharts;
  const source = document.getElementById("report-charts");
  if (!C || !source) return;
  let charts = [];
  try {
    charts = JSON.parse(source.textContent || "[]");
  } catch (e) {
    charts = [];
  }

  function formatter(kind) {
    if (kind === "pct") return (v) => C.formatNumber(v, 1) + " %";
    return (v) => C.formatNumber(v, 0);
  }

  // fitLabels: labels shortened to the width of one bar's slot (the full name stays in the tooltip).
  function fitLabels(canvas, items) {
    const slot = (canvas.clientWidth || 300) / Math.max(1, items.length);
    const chars = Math.max(3, Math.floor((slot - 6) / 6.2));
    return items.map((i) => {
      const full = String(i.label || i.title || "");
      const text = full.replace(/^(Xã|Huyện|Tỉnh|Thành phố|Phường|Thị xã|Thị trấn|Điểm cầu) /, "");
      return Object.assign({}, i, {label: text.length > chars ? text.slice(0, chars - 1) + "…" : text});
    });
  }

  function drawOne(chart) {
    const canvas = document.getElementById(chart.id);
    if (!canvas) return;
    const empty = document.querySelector('[data-nodata-for="' + chart.id + '"]');
    const hasData = chart.type === "line"
      ? (chart.points || []).some((p) => p[1] > 0)
      : (chart.items || []).length > 0;
    if (empty) empty.hidden = hasData;
    canvas.classList.toggle("is-empty", !hasData);
    if (chart.type === "line") {
      const span = Math.max(60000, chart.end - chart.start);
      C.lineChart(canvas, [{data: chart.points || [], color: chart.color || "#1463c4"}], {
        now: chart.end, span: span, minMax: chart.minMax || 1, format: formatter(chart.format),
        spanLabel: chart.startLabel || "", nowLabel: chart.endLabel || "",
      });
    } else {
      const items = fitLabels(canvas, chart.items || []);
      C.bars(canvas, items, {color: chart.color, format: formatter(chart.format)});
      canvas.title = (chart.items || []).map((i) => (i.title || i.label) + ": " + formatter(chart.format)(i.value))
        .join("\n");
    }
    canvas.dataset.drawn = "1";
  }

  function drawAll() {
    charts.forEach(drawOne);
    document.documentElement.dataset.chartsDrawn = String(charts.length);
  }

  let pending = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(drawAll);
  });
  window.addEventListener("beforeprint", drawAll);
  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("[data-print]");
    if (button) {
      ev.preventDefault();
      window.print();
    }
  });
  drawAll();
  if (document.querySelector("[data-autoprint]")) setTimeout(() => window.print(), 300);
})();
