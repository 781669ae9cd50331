// Evaluate page: start a walk-forward evaluation (model, range), follow it, then show the
// report: first table, verdicts, the other tables and the figures.
"use strict";

const E = { job: null, timer: null, models: [], stores: {} };
const FIGURES = { "fan_chart.png": "Fan chart (sample week)", "reliability.png": "Reliability diagram",
  "pit_histogram.png": "PIT histogram", "crps_by_hour.png": "CRPS by hour of day" };

function fillModels(keep) {
  const asset = FXD.$("asset").value;
  const own = E.models.filter((m) => m.asset === asset).map((m) => [m.model_name, m.model_name]);
  FXD.fill(FXD.$("model"), [["", "best checkpoint"], ...own], keep);
  const info = E.stores[asset];
  for (const id of ["start-date", "end-date"]) {
    FXD.$(id).min = info ? info.first.slice(0, 10) : "";
    FXD.$(id).max = info ? info.last.slice(0, 10) : "";
  }
  FXD.$("range-note").textContent = info ? `The store holds ${FXD.time(info.first)} → ${FXD.time(info.last)}. ` +
    "A model is evaluated only on dates it did not train or validate on; the service refuses other ranges." : "";
}

async function run() {
  const body = { asset: FXD.$("asset").value, start: FXD.$("start-date").value, end: FXD.$("end-date").value,
    baselines_only: FXD.$("baselines-only").checked };
  if (FXD.$("model").value) body.model = FXD.$("model").value;
  if (FXD.$("stride").value) body.stride = Number(FXD.$("stride").value);
  if (FXD.$("samples").value) body.num_samples = Number(FXD.$("samples").value);
  if (!body.start || !body.end) { FXD.show("message", "Pick a start and an end date."); return; }
  FXD.show("message", "");
  FXD.$("report").hidden = true;
  try {
    const job = await FXD.api("/v1/jobs/evaluate", { method: "POST", json: body });
    follow(job.id);
  } catch (e) {
    FXD.show("message", e.message);
  }
}

function follow(id) {
  E.job = id;
  clearInterval(E.timer);
  poll();
  E.timer = setInterval(poll, 1000);
}

async function poll() {
  try {
    const job = await FXD.api(`/v1/jobs/${E.job}`);
    const p = job.progress;
    FXD.$("progress-bar").style.width = Math.round(100 * (p.fraction || 0)) + "%";
    FXD.$("progress-text").textContent = `Job ${job.id} · ${job.status}` +
      (p.total ? ` · ${p.done}/${p.total} forecasts` : "") +
      (job.status === "running" && job.eta_s ? ` · ETA ${FXD.duration(job.eta_s)}` : "");
    FXD.$("cancel").disabled = !["queued", "running"].includes(job.status);
    if (["queued", "running"].includes(job.status)) return;
    clearInterval(E.timer);
    if (job.status === "completed") report(job.id);
    else FXD.show("message", job.error || `evaluation ${job.status}`);
  } catch (e) {
    clearInterval(E.timer);
    FXD.show("message", e.message);
  }
}

// the report's markdown: headings, tables, bullets, paragraphs (bold kept); text only
function markdown(md) {
  const out = [];
  const lines = md.split("\n");
  const inline = (text) => {
    const span = FXD.el("span");
    text.split(/(\*\*[^*]+\*\*)/).forEach((part) => span.append(part.startsWith("**") ? FXD.el("b", {}, part.slice(2, -2)) : part));
    return span;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].startsWith("|")) rows.push(lines[i++]);
      i--;
      const cells = (r) => r.slice(1, -1).split("|").map((c) => c.trim());
      const table = FXD.el("table", { class: "report-table" },
        FXD.el("thead", {}, FXD.el("tr", {}, ...cells(rows[0]).map((c) => FXD.el("th", {}, inline(c))))),
        FXD.el("tbody", {}, ...rows.slice(2).map((r) => FXD.el("tr", {}, ...cells(r).map((c) => FXD.el("td", {}, inline(c)))))));
      out.push(table);
    } else if (/^#+\s*Plots\s*$/.test(line)) {
      continue; // the figures are shown below the report
    } else if (line.startsWith("#")) {
      const level = Math.min(line.match(/^#+/)[0].length + 1, 4);
      out.push(FXD.el("h" + level, {}, line.replace(/^#+\s*/, "")));
    } else if (line.startsWith("- ")) {
      const items = [];
      while (i < lines.length && lines[i].startsWith("- ")) items.push(FXD.el("li", {}, inline(lines[i++].slice(2))));
      i--;
      out.push(FXD.el("ul", { class: "verdicts" }, ...items));
    } else if (line.startsWith("![")) {
      continue; // figures are shown below
    } else if (line.trim()) {
      out.push(FXD.el("p", {}, inline(line)));
    }
  }
  return out;
}

async function report(id) {
  try {
    const r = await FXD.api(`/v1/jobs/${id}/report`);
    FXD.$("report-folder").textContent = r.folder;
    FXD.$("report-body").replaceChildren(...markdown(r.markdown));
    const figs = await Promise.all(r.figures.map(async (name) => {
      const res = await fetch(`/v1/jobs/${id}/report/${name}`, { headers: FXD.headers() });
      const url = URL.createObjectURL(await res.blob());
      return FXD.el("figure", {}, FXD.el("img", { src: url, alt: FIGURES[name] || name }), FXD.el("figcaption", {}, FIGURES[name] || name));
    }));
    FXD.$("figures").replaceChildren(...figs);
    FXD.$("report").hidden = false;
  } catch (e) {
    FXD.show("message", e.message);
  }
}

async function main() {
  // listeners first: a click while the pickers load must still start the job
  FXD.$("asset").addEventListener("change", () => fillModels());
  FXD.$("run").addEventListener("click", run);
  FXD.$("cancel").addEventListener("click", async () => {
    try { await FXD.api(`/v1/jobs/${E.job}`, { method: "DELETE" }); } catch (e) { FXD.show("message", e.message); }
    poll();
  });
  try {
    const { data, models } = await FXD.assetsAndModels();
    E.models = models;
    E.stores = Object.fromEntries(data.assets.map((a) => [a.asset, a]));
    FXD.fill(FXD.$("asset"), data.assets.map((a) => [a.asset, a.asset]), FXD.param("asset") || undefined);
    fillModels(FXD.param("model") || undefined);
    const jobs = (await FXD.api("/v1/jobs")).jobs.filter((j) => j.kind === "evaluate")
      .sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    if (jobs.length && E.job === null) follow(jobs[0].id); // the last run, unless one was started
  } catch (e) {
    FXD.show("message", e.message);
  }
}

main();
