// Train page: algorithm, asset, preset; a parameter form generated from the configuration's
// JSON schema; validation by the service's strict config; device check; Start/Stop; live
// progress of the latest training job (read from the service, so it survives a reload).
"use strict";

const S = { algorithms: [], schema: null, base: null, presets: {}, fixed: [], stores: {}, job: null, timer: null, shown: null };

const deref = (node) => (node && node.$ref ? S.schema.$defs[node.$ref.split("/").pop()] : node);
const getPath = (obj, path) => path.reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);

// one input per leaf of the schema: a collapsible group per top-level section, its leaves
// first, then each nested object under its dotted name
function buildForm(container) {
  const props = deref(S.schema).properties;
  const general = Object.entries(props).filter(([k, v]) => !deref(v).properties);
  if (general.length) container.append(group("general", general.map(([k, v]) => field([k], deref(v), v)), true));
  for (const [key, raw] of Object.entries(props)) {
    const child = deref(raw);
    if (!child.properties || S.fixed.includes(key) || key === "asset") continue;
    container.append(group(key, leaves(child, [key]), key === "training" || key === "data"));
  }
}

function leaves(node, path) {
  const out = [];
  const nested = [];
  for (const [key, raw] of Object.entries(node.properties || {})) {
    const child = deref(raw);
    if (child.properties) nested.push([key, child]);
    else out.push(field([...path, key], child, raw));
  }
  for (const [key, child] of nested) {
    const here = [...path, key];
    const inner = leaves(child, here);
    const direct = Object.values(child.properties).some((v) => !deref(v).properties);
    if (direct) out.push(FXD.el("div", { class: "sub" }, here.slice(1).join(".")));
    out.push(...inner);
  }
  return out;
}

function group(name, fields, open) {
  return FXD.el("details", { class: "group", open, "data-section": name },
    FXD.el("summary", {}, name), FXD.el("div", { class: "fields" }, ...fields));
}

function kindOf(node) {
  const options = node.anyOf ? node.anyOf.filter((o) => o.type !== "null") : [node];
  const main = options[0] || {};
  if (main.enum) return { kind: "enum", values: main.enum, nullable: Boolean(node.anyOf) };
  if (main.type === "boolean") return { kind: "bool" };
  if (main.type === "integer" || main.type === "number") return { kind: "number", nullable: Boolean(node.anyOf) };
  if (main.type === "string" && main.format === "date") return { kind: "date" };
  if (main.type === "string") return { kind: "text", nullable: Boolean(node.anyOf) };
  return { kind: "json" };
}

function field(path, node, raw) {
  const name = path.join(".");
  const k = kindOf(node);
  let input;
  if (k.kind === "enum") {
    input = FXD.el("select", {}, ...(k.nullable ? [FXD.el("option", { value: "null" }, "none")] : []),
      ...k.values.map((v) => FXD.el("option", { value: v }, String(v))));
  } else if (k.kind === "bool") {
    input = FXD.el("input", { type: "checkbox" });
  } else if (k.kind === "number") {
    input = FXD.el("input", { type: "text", inputmode: "decimal", placeholder: k.nullable ? "none" : "" });
  } else if (k.kind === "date") {
    input = FXD.el("input", { type: "date" });
  } else {
    input = FXD.el("input", { type: "text", placeholder: k.nullable ? "none" : "" });
  }
  input.dataset.path = name;
  input.dataset.kind = k.kind;
  input.id = "f-" + name.replace(/\./g, "-");
  input.addEventListener("change", () => { input.closest("label").classList.remove("invalid"); if (name === "training.precision") device(); });
  const title = (raw.description || node.description || "") + (node.minimum !== undefined ? ` (≥ ${node.minimum})` : "");
  return FXD.el("label", { title }, path[path.length - 1], input);
}

function setValues(config) {
  for (const input of document.querySelectorAll("#params [data-path]")) {
    const v = getPath(config, input.dataset.path.split("."));
    const kind = input.dataset.kind;
    if (kind === "bool") input.checked = Boolean(v);
    else if (kind === "enum") input.value = v === null || v === undefined ? "null" : String(v);
    else if (kind === "json") input.value = JSON.stringify(v);
    else input.value = v === null || v === undefined ? "" : String(v);
  }
}

// the text of a field as it goes into a `key=value` override (read as YAML by the service)
function valueText(input) {
  const kind = input.dataset.kind;
  const v = input.value.trim();
  if (kind === "bool") return input.checked ? "true" : "false";
  if (kind === "enum") return v === "null" ? "null" : JSON.stringify(v);
  if (kind === "number") return v === "" ? "null" : v;
  if (kind === "text") return v === "" ? "null" : JSON.stringify(v);
  if (kind === "date") return v === "" ? "null" : v;
  return v === "" ? "null" : v;
}

function baseText(input) {
  const v = getPath(S.base, input.dataset.path.split("."));
  const kind = input.dataset.kind;
  if (kind === "bool") return v ? "true" : "false";
  if (v === null || v === undefined) return "null";
  if (kind === "enum" || kind === "text") return JSON.stringify(String(v));
  if (kind === "number" || kind === "date") return String(v);
  return JSON.stringify(v);
}

function overrides() {
  const out = [];
  for (const input of document.querySelectorAll("#params [data-path]")) {
    const text = valueText(input);
    if (text !== baseText(input)) out.push(`${input.dataset.path}=${text}`);
  }
  for (const line of FXD.$("extra").value.split("\n")) if (line.trim()) out.push(line.trim());
  return out;
}

function algorithm() {
  return S.algorithms.find((a) => a.id === FXD.$("algorithm").value) || S.algorithms[0];
}

// the form of an algorithm with its own request schema (the stacking ensemble)
function buildAlgoForm(alg) {
  const form = FXD.$("algo-params");
  const fields = Object.entries(alg.schema.properties).filter(([k]) => !["asset", "overrides"].includes(k))
    .map(([k, node]) => {
      const label = field([alg.id, k], node, node);
      const input = label.querySelector("[data-path]");
      input.dataset.key = k;
      const v = node.default;
      if (input.dataset.kind === "bool") input.checked = Boolean(v);
      else input.value = v === undefined || v === null ? "" : String(v);
      return label;
    });
  form.replaceChildren(group(alg.label, fields, true));
}

function algoValues() {
  const out = {};
  for (const input of document.querySelectorAll("#algo-params [data-key]")) {
    const v = input.value.trim();
    const kind = input.dataset.kind;
    if (kind === "bool") out[input.dataset.key] = input.checked;
    else if (v === "") continue;
    else out[input.dataset.key] = kind === "number" ? Number(v) : v;
  }
  return out;
}

function showAlgorithm() {
  const alg = algorithm();
  const own = Boolean(alg.schema);
  if (own && !FXD.$("algo-params").childElementCount) buildAlgoForm(alg);
  FXD.$("algo-params").hidden = !own;
  FXD.$("params").hidden = own;
  FXD.$("preset").disabled = own;
  storeRange();
}

function request() {
  const extra = FXD.$("extra").value.split("\n").map((l) => l.trim()).filter(Boolean);
  if (algorithm().schema) return Object.assign({ asset: FXD.$("asset").value, overrides: extra }, algoValues());
  return { asset: FXD.$("asset").value, overrides: overrides() };
}

function showProblems(message) {
  FXD.show("validation", message);
  document.querySelectorAll("#params label.invalid").forEach((l) => l.classList.remove("invalid"));
  for (const m of message.matchAll(/^\s*- ([\w.]+):/gm)) {
    const input = document.querySelector(`#params [data-path="${m[1]}"]`);
    if (input) {
      input.closest("label").classList.add("invalid");
      input.closest("details").open = true;
    }
  }
}

async function validate() {
  try {
    const body = algorithm().schema ? { asset: FXD.$("asset").value, overrides: request().overrides } : request();
    const r = await FXD.api("/v1/config/validate", { method: "POST", json: body });
    FXD.show("validation", `Valid: ${body.overrides.length} change(s) from the service's config; ` +
      `${r.config.training.epochs} epochs, model ${r.config.model.name}.`, true);
    return true;
  } catch (e) {
    showProblems(e.message);
    return false;
  }
}

async function start() {
  if (!FXD.$("asset").value) { FXD.show("validation", "Import candles on the Data page first."); return; }
  try {
    const job = await FXD.api(algorithm().endpoint, { method: "POST", json: request() });
    FXD.show("validation", `Started job ${job.id} (${job.status}).`, true);
    follow(job.id);
  } catch (e) {
    showProblems(e.message);
  }
}

async function stop() {
  if (!S.job) return;
  FXD.$("stop").disabled = true;
  try {
    await FXD.api(`/v1/jobs/${S.job}`, { method: "DELETE" });
  } catch (e) {
    FXD.show("validation", e.message);
  }
  poll();
}

function follow(id) {
  S.job = id;
  clearInterval(S.timer);
  // nothing of the job shown before stays on screen
  FXD.$("epoch-table").tBodies[0].replaceChildren();
  FXD.$("progress-bar").style.width = "0%";
  FXD.$("progress-bar").dataset.fraction = "0";
  FXD.$("progress-text").textContent = `Job ${id}: waiting for its first report…`;
  lossChart([]);
  poll();
  S.timer = setInterval(poll, 1000);
}

async function poll() {
  if (!S.job) return;
  try {
    const [job, hist] = await Promise.all([
      FXD.api(`/v1/jobs/${S.job}`), FXD.api(`/v1/jobs/${S.job}/history`)]);
    render(job, hist.epochs, hist.step);
    if (!["queued", "running"].includes(job.status)) clearInterval(S.timer);
  } catch (e) {
    clearInterval(S.timer);
    FXD.$("progress-text").textContent = e.message;
  }
}

// the done fraction: whole epochs from the job, refined by the batch within the epoch
function fractionOf(job, step) {
  const p = job.progress;
  let f = p.fraction || 0;
  if (step && p.epochs && job.status === "running") {
    f = Math.max(f, Math.min(1, (step.epoch + step.batch / step.batches) / p.epochs));
  }
  return f;
}

function etaOf(job, f) {
  if (job.eta_s !== null && job.eta_s !== undefined) return job.eta_s;
  if (!job.started_at || !(f > 0)) return null;
  const elapsed = (Date.now() - Date.parse(job.started_at)) / 1000;
  return (elapsed * (1 - f)) / f;
}

function render(job, epochs, step) {
  const p = job.progress;
  const f = fractionOf(job, step);
  const pct = Math.round(100 * f);
  FXD.$("progress-bar").style.width = pct + "%";
  FXD.$("progress-bar").dataset.fraction = String(f);
  const pill = FXD.$("job-status");
  pill.textContent = job.status;
  pill.className = "pill " + job.status;
  FXD.$("stop").disabled = !["queued", "running"].includes(job.status);
  const none = p.epoch === null || p.epoch === undefined;
  const epochText = job.kind !== "train" ? `${job.kind} fit` : !none ? `epoch ${p.epoch + 1} of ${p.epochs} done` :
    step ? `epoch ${step.epoch + 1} of ${p.epochs} running` : "starting (loading data, building the model)";
  const steps = step ? ` · step ${step.step} (batch ${step.batch}/${step.batches} of epoch ${step.epoch + 1})` : "";
  FXD.$("progress-text").textContent = `Job ${job.id} · ${job.asset} · ${epochText}${steps} · ${pct} %` +
    (job.status === "running" ? ` · ETA ${FXD.duration(etaOf(job, f))}` : "") +
    (job.error ? ` · ${job.error}` : "");
  const isTrain = job.kind === "train";
  FXD.$("loss-chart").hidden = !isTrain;
  FXD.$("epoch-table").hidden = !isTrain;
  const summary = !isTrain && job.result && job.result.summary;
  FXD.$("job-result").hidden = !summary;
  FXD.$("job-result").textContent = summary ?
    `${job.result.asset}/${job.result.model_name} registered\n${JSON.stringify(summary, null, 1)}` : "";
  const log = FXD.$("job-log");
  log.textContent = job.log_tail.join("\n");
  log.scrollTop = log.scrollHeight;
  const rows = epochs.map((e) => FXD.el("tr", {}, FXD.el("td", {}, e.epoch + 1),
    FXD.el("td", {}, FXD.num(e.train_loss, 4)), FXD.el("td", {}, FXD.num(e.val_loss, 4)),
    FXD.el("td", {}, e.val_coverage90 === undefined ? "—" : FXD.num(100 * e.val_coverage90, 1) + " %"),
    FXD.el("td", {}, FXD.num(e.val_crps, 5))));
  FXD.$("epoch-table").tBodies[0].replaceChildren(...rows);
  lossChart(epochs);
}

function lossChart(epochs) {
  const c = FXD.$("loss-chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#667085";
  const keys = [["train_loss", "#2962ff"], ["val_loss", "#f59e0b"]];
  const vals = epochs.flatMap((e) => keys.map(([k]) => e[k]).filter((v) => Number.isFinite(v)));
  if (!vals.length) { g.fillText("loss curves appear after the first epoch", 10, 20); return; }
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const L = 48, R = 10, T = 12, B = 22, W = c.width - L - R, H = c.height - T - B;
  const n = Math.max(epochs.length - 1, 1);
  const x = (i) => L + (W * i) / n, y = (v) => T + H * (1 - (v - lo) / (hi - lo));
  g.strokeStyle = "#d9dee7";
  g.strokeRect(L, T, W, H);
  g.fillText(hi.toFixed(3), 4, T + 8);
  g.fillText(lo.toFixed(3), 4, T + H);
  g.fillText("epoch", L + W / 2 - 14, c.height - 6);
  keys.forEach(([k, color], j) => {
    g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 2;
    g.beginPath();
    epochs.forEach((e, i) => { if (Number.isFinite(e[k])) { const f = i === 0 ? "moveTo" : "lineTo"; g[f](x(i), y(e[k])); } });
    g.stroke();
    epochs.forEach((e, i) => { if (Number.isFinite(e[k])) { g.beginPath(); g.arc(x(i), y(e[k]), 3, 0, 7); g.fill(); } });
    g.fillText(k, L + 8 + 80 * j, T + 12);
  });
}

async function device() {
  const input = document.querySelector('#params [data-path="training.precision"]');
  const q = input ? `?precision=${encodeURIComponent(input.value)}` : "";
  try {
    const d = await FXD.api("/v1/device" + q);
    const gpus = d.cuda_devices.length ? d.cuda_devices.map((g) =>
      FXD.el("li", {}, `cuda:${g.index} ${g.name} · ${g.memory_gib.toFixed(1)} GiB · compute ${g.capability} · bf16 ${g.bf16 ? "yes" : "no"}`)) :
      [FXD.el("li", {}, "no CUDA device: training runs on the CPU")];
    FXD.$("device").replaceChildren(
      FXD.el("p", {}, `CPU: ${d.cpu_count} cores, torch uses ${d.torch_threads} thread(s) · torch ${d.torch}`),
      FXD.el("ul", {}, ...gpus),
      FXD.el("p", { id: "device-precision" }, `precision ${d.precision_setting} → `, FXD.el("b", {}, d.precision), ` on ${d.accelerator}`));
  } catch (e) {
    FXD.$("device").textContent = e.message;
  }
}

function storeRange() {
  const info = S.stores[FXD.$("asset").value];
  FXD.$("store-range").textContent = info ?
    `store: ${FXD.time(info.first)} → ${FXD.time(info.last)}, ${info.bars.toLocaleString()} bars` : "";
  for (const input of document.querySelectorAll('.params input[type="date"]')) {
    if (info) { input.min = info.first.slice(0, 10); input.max = info.last.slice(0, 10); }
  }
}

async function main() {
  lossChart([]);
  let meta, data, jobs, algs;
  try {
    [meta, data, jobs, algs] = await Promise.all([FXD.api("/v1/config/schema"), FXD.api("/v1/data"),
      FXD.api("/v1/jobs"), FXD.api("/v1/algorithms")]);
  } catch (e) {
    FXD.show("validation", e.message);
    return;
  }
  S.algorithms = algs.algorithms;
  FXD.fill(FXD.$("algorithm"), S.algorithms.map((a) => [a.id, a.label]));
  S.schema = meta.schema; S.base = meta.config; S.presets = meta.presets; S.fixed = meta.fixed_sections;
  S.stores = Object.fromEntries(data.assets.map((a) => [a.asset, a]));
  FXD.fill(FXD.$("asset"), data.assets.map((a) => [a.asset, a.asset]), meta.config.asset.symbol);
  FXD.fill(FXD.$("preset"), Object.keys(S.presets).map((p) => [p, p === "service" ? "service config" : p]));
  buildForm(FXD.$("params"));
  setValues(S.base);
  storeRange();
  FXD.$("preset").addEventListener("change", () => setValues(S.presets[FXD.$("preset").value]));
  FXD.$("asset").addEventListener("change", storeRange);
  FXD.$("algorithm").addEventListener("change", showAlgorithm);
  FXD.$("validate").addEventListener("click", validate);
  FXD.$("start").addEventListener("click", start);
  FXD.$("stop").addEventListener("click", stop);
  device();
  const train = jobs.jobs.filter((j) => j.kind === "train" || j.kind === "ensemble").sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  if (train.length) follow(train[0].id);
}

main();
