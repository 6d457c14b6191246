/* The chargeback dashboards' charts (Chart.js, vendored). Each <canvas data-chart="cost|gpu|standby"
   data-source="<id>"> is drawn from the JSON the page embeds with json_script (no inline script, no
   data in code): the same figures as the table beside it. */
(function () {
  "use strict";
  var PALETTE = ["#1f6feb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777",
    "#4b5563", "#a16207"];

  function colour(i) { return PALETTE[i % PALETTE.length]; }

  function config(kind, data) {
    if (kind === "cost") {
      return {
        type: "bar",
        data: {
          labels: data.cost.labels,
          datasets: data.cost.datasets.map(function (d, i) {
            return { label: d.label, data: d.data, backgroundColor: colour(i) };
          })
        },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true,
            title: { display: true, text: "cost (" + (data.currency || "list price") + ")" } } }
        }
      };
    }
    if (kind === "gpu") {
      return {
        type: "bar",
        data: {
          labels: data.gpu.labels,
          datasets: [
            { label: "GPU-hours", data: data.gpu.gpu_hours, backgroundColor: colour(0) },
            { label: "idle GPU-hours (where measured)", data: data.gpu.idle_gpu_hours, backgroundColor: colour(1) }
          ]
        },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
          scales: { y: { beginAtZero: true, title: { display: true, text: "GPU-hours" } } } }
      };
    }
    if (kind === "standby") {
      return {
        type: "bar",
        data: { labels: data.standby.labels,
          datasets: [{ label: "standby GPU-hours (provider)", data: data.standby.data, backgroundColor: colour(8) }] },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
          scales: { y: { beginAtZero: true, title: { display: true, text: "GPU-hours" } } } }
      };
    }
    return null;
  }

  function draw() {
    if (typeof window.Chart === "undefined") { return; }
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      var canvas = canvases[i];
      var source = document.getElementById(canvas.getAttribute("data-source"));
      if (!source || window.Chart.getChart(canvas)) { continue; }
      var cfg = config(canvas.getAttribute("data-chart"), JSON.parse(source.textContent));
      if (cfg) { new window.Chart(canvas, cfg); }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
