// Forecast page: candles of recent bars, the forecast fan (q05–q95, q25–q75, median) at each
// horizon, the forecast table; live updates from /v1/stream/{asset}; an as-of picker that
// shows a past decision time with the realised closes drawn over the fan.
"use strict";

const BAND = "#c7d7fe", CORE = "#84a9ff", MEDIAN = "#1d4ed8", REAL = "#f59e0b";
const state = { models: [], stream: null, asof: null, busy: false, chart: null, series: {} };

function makeChart() {
  const el = FXD.$("chart");
  const chart = LightweightCharts.createChart(el, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#334155", fontFamily: "system-ui, sans-serif" },
    grid: { vertLines: { color: "#f1f5f9" }, horzLines: { color: "#f1f5f9" } },
    timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 4 },
    rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.08 } },
    crosshair: { mode: 0 },
  });
  const quiet = { lastValueVisible: false, priceLineVisible: false, crosshairMarkerVisible: false };
  const area = (fill, line) => chart.addAreaSeries(Object.assign({
    topColor: fill, bottomColor: fill, lineColor: line, lineWidth: 1 }, quiet));
  // painted in order: each area fills down to the pane's bottom, so the next one repaints
  // below its own line; the white q05 area clears what lies under the fan.
  state.series = {
    candles: chart.addCandlestickSeries({ upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
      wickUpColor: "#26a69a", wickDownColor: "#ef5350" }),
    q95: area(BAND, "#8fb0fb"),
    q75: area(CORE, CORE),
    q25: area(BAND, CORE),
    q05: area("#ffffff", "#8fb0fb"),
    median: chart.addLineSeries(Object.assign({ color: MEDIAN, lineWidth: 2 }, quiet)),
    real: chart.addLineSeries(Object.assign({ color: REAL, lineWidth: 2, lineStyle: 0 }, quiet)),
  };
  state.chart = chart;
}

// price axis and labels at the asset's pip resolution (a tenth of a pip)
function priceFormat(pip) {
  const minMove = pip / 10;
  const precision = Math.max(0, Math.round(-Math.log10(minMove)));
  for (const s of Object.values(state.series)) s.applyOptions({ priceFormat: { type: "price", precision, minMove } });
}

const iso = (sec) => new Date(sec * 1000).toISOString();
const secs = (isoText) => Math.floor(Date.parse(isoText) / 1000);

async function loadPickers() {
  const { data, models } = await FXD.assetsAndModels();
  state.models = models;
  const assets = [...new Set([...data.assets.map((a) => a.asset), ...models.map((m) => m.asset)])].sort();
  FXD.fill(FXD.$("asset"), assets.map((a) => [a, a]), FXD.param("asset") || undefined);
  state.stores = Object.fromEntries(data.assets.map((a) => [a.asset, a]));
  fillModels(FXD.param("model") || undefined);
  if (FXD.param("asof")) FXD.$("asof").value = FXD.param("asof").slice(0, 16);
}

function fillModels(keep) {
  const asset = FXD.$("asset").value;
  const own = state.models.filter((m) => m.asset === asset).map((m) => [m.model_name, m.model_name]);
  FXD.fill(FXD.$("model"), [["", "best checkpoint"], ...own], keep);
  const info = state.stores && state.stores[asset];
  if (info) {
    FXD.$("asof").min = info.first.slice(0, 16);
    FXD.$("asof").max = info.last.slice(0, 16);
  }
  return own.length > 0;
}

async function refresh() {
  const asset = FXD.$("asset").value;
  if (!asset) { FXD.show("message", "The store holds no asset yet: import candles on the Data page."); return; }
  if (state.busy) return;
  state.busy = true;
  FXD.show("message", "");
  try {
    const body = { asset, quantiles: [0.25, 0.75] };
    if (FXD.$("model").value) body.model = FXD.$("model").value;
    if (state.asof) body.asof = state.asof;
    const pred = await FXD.api("/v1/predict", { method: "POST", json: body });
    const t0 = secs(pred.timestamp);
    const hmax = Math.max(...pred.horizons);
    const candles = await FXD.api(`/v1/candles/${asset}?bars=220&end=${encodeURIComponent(pred.timestamp)}`);
    let realised = [];
    if (state.asof) {
      const end = iso(t0 + (hmax + 5) * 60);
      const after = await FXD.api(`/v1/candles/${asset}?start=${encodeURIComponent(pred.timestamp)}&end=${encodeURIComponent(end)}`);
      // a close belongs at its bar's close time
      realised = [{ time: t0, value: pred.last_close }, ...after.candles.map((c) => ({ time: c.time + 300, value: c.close }))]
        .filter((p) => p.time <= t0 + hmax * 60);
    }
    priceFormat(pred.pip_size);
    draw(pred, candles.candles, realised);
    table(pred, realised);
    FXD.$("decision").textContent = `decision time ${FXD.time(pred.timestamp)} · model ${pred.model_name} · ${pred.num_samples} samples`;
    FXD.$("mode").textContent = state.asof ? "past decision time" : "live";
    FXD.$("mode").className = "pill " + (state.asof ? "interrupted" : "ok");
  } catch (e) {
    FXD.show("message", e.message);
  } finally {
    state.busy = false;
  }
}

function draw(pred, candles, realised) {
  const t0 = secs(pred.timestamp);
  const hs = pred.horizons.slice().sort((a, b) => a - b);
  const hmax = hs[hs.length - 1];
  const whitespace = [];
  for (let m = 5; m <= hmax; m += 5) whitespace.push({ time: t0 + m * 60 });
  const past = candles.filter((c) => c.time < t0);
  // whitespace points keep the time scale even (one slot per 5 min) over the forecast span
  state.series.candles.setData([...past, { time: t0 }, ...whitespace]);
  const pts = (fn) => [{ time: t0, value: pred.last_close }, ...hs.map((h) => ({ time: t0 + h * 60, value: fn(String(h)) }))];
  const lv = pred.price_levels;
  state.series.q95.setData(pts((h) => lv.q95[h]));
  state.series.q75.setData(pts((h) => pred.last_close + pred.quantiles.q75[h]));
  state.series.q25.setData(pts((h) => pred.last_close + pred.quantiles.q25[h]));
  state.series.q05.setData(pts((h) => lv.q05[h]));
  state.series.median.setData(pts((h) => lv.q50[h]));
  state.series.real.setData(realised);
  const n = past.length;
  state.chart.timeScale().setVisibleLogicalRange({ from: Math.max(0, n - 140), to: n + whitespace.length + 4 });
}

function table(pred, realised) {
  const pip = pred.pip_size;
  const at = Object.fromEntries(realised.map((p) => [p.time, p.value]));
  const t0 = secs(pred.timestamp);
  const digits = pip < 0.001 ? 5 : 3;
  const rows = pred.horizons.map((h) => {
    const k = String(h);
    const real = at[t0 + h * 60];
    const inside = real !== undefined && real >= pred.price_levels.q05[k] && real <= pred.price_levels.q95[k];
    return FXD.el("tr", {},
      FXD.el("td", {}, `${h} min`),
      FXD.el("td", {}, `${FXD.num(pred.mean[k] / pip, 1)} ± ${FXD.num(pred.std[k] / pip, 1)}`),
      FXD.el("td", {}, FXD.num(pred.price_levels.q05[k], digits)),
      FXD.el("td", {}, FXD.num(pred.price_levels.q50[k], digits)),
      FXD.el("td", {}, FXD.num(pred.price_levels.q95[k], digits)),
      FXD.el("td", { class: pred.direction[k] }, pred.direction[k]),
      FXD.el("td", {}, FXD.num(100 * pred.confidence[k], 0) + " %"),
      FXD.el("td", {}, real === undefined ? "—" : `${FXD.num(real, digits)} ${inside ? "(inside q05–q95)" : "(outside)"}`));
  });
  FXD.$("forecast-table").tBodies[0].replaceChildren(...rows);
  FXD.$("forecast-note").textContent = `Last close ${FXD.num(pred.last_close, digits)}; pip ${pip}; ` +
    `price levels = last close + forecast change. ` + (pred.calibrated ? "Calibrated." : "Not recalibrated.");
}

function startStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
  const asset = FXD.$("asset").value;
  if (!asset || state.asof || !state.models.some((m) => m.asset === asset)) return;
  state.stream = FXD.stream(`/v1/stream/${asset}`, (name, data) => {
    if (name === "forecast" && !state.asof) {
      FXD.$("mode").textContent = `live · new bar ${FXD.time(data.timestamp)}`;
      refresh();
    }
  }, (e) => FXD.show("message", "live stream: " + e.message));
}

async function main() {
  makeChart();
  try {
    await loadPickers();
  } catch (e) {
    FXD.show("message", e.message);
    return;
  }
  state.asof = FXD.$("asof").value ? new Date(FXD.$("asof").value + "Z").toISOString() : null;
  FXD.$("asset").addEventListener("change", () => { fillModels(); refresh(); startStream(); });
  FXD.$("model").addEventListener("change", refresh);
  FXD.$("asof-go").addEventListener("click", () => {
    const v = FXD.$("asof").value;
    if (!v) { FXD.show("message", "Pick a past date and time (UTC) first."); return; }
    state.asof = new Date(v + "Z").toISOString();
    startStream();
    refresh();
  });
  FXD.$("live-go").addEventListener("click", () => { state.asof = null; FXD.$("asof").value = ""; startStream(); refresh(); });
  if (!state.models.length) {
    FXD.show("message", "No model is registered yet: train one on the Train page.");
    return;
  }
  await refresh();
  startStream();
}

main();
