// Models page: the registry per asset: models with their configs, runs (status, log,
// resume when interrupted), checkpoints; mark stale runs interrupted.
"use strict";

async function load() {
  const asset = FXD.$("asset").value;
  const box = FXD.$("models");
  if (!asset) { box.replaceChildren(FXD.el("p", { class: "note" }, "No model is registered yet: train one on the Train page.")); return; }
  try {
    const shown = await FXD.api(`/v1/models/${asset}`);
    box.replaceChildren(...shown.models.map(modelCard));
  } catch (e) {
    FXD.show("message", e.message);
  }
}

function modelCard(entry) {
  const m = entry.model;
  const configs = { architecture: m.architecture_config, training: m.training_config,
    features: m.feature_config, horizons: m.horizon_config };
  const runs = entry.runs.map((r) => FXD.el("tr", {},
    FXD.el("td", {}, r.id), FXD.el("td", {}, r.run_name),
    FXD.el("td", {}, FXD.el("span", { class: "pill " + r.status }, r.status)),
    FXD.el("td", {}, FXD.time(r.started_at)), FXD.el("td", {}, r.epochs ?? "—"),
    FXD.el("td", {}, FXD.num(r.final_train_loss, 4)), FXD.el("td", {}, FXD.num(r.final_val_loss, 4)),
    FXD.el("td", {}, r.device), FXD.el("td", {}, r.error_message || ""),
    FXD.el("td", {},
      FXD.el("button", { class: "secondary", onclick: () => showLog(r.id) }, "Log"), " ",
      r.status === "interrupted" ? FXD.el("button", { onclick: () => resume(r.id), "data-resume": r.id }, "Resume") : "")));
  const ckpts = entry.checkpoints.map((c) => FXD.el("tr", {},
    FXD.el("td", {}, c.path.split("/").pop()), FXD.el("td", {}, c.epoch), FXD.el("td", {}, c.is_best ? "best" : ""),
    FXD.el("td", {}, FXD.num(c.val_loss, 4)), FXD.el("td", {}, (c.size_bytes / 1e6).toFixed(2) + " MB"),
    FXD.el("td", {}, FXD.time(c.created_at))));
  const metrics = entry.latest_metrics.length ? FXD.el("p", { class: "note" },
    `latest evaluation metrics: ${entry.latest_metrics.length} rows`) : null;
  return FXD.el("section", { class: "card model" },
    FXD.el("h2", {}, `${m.asset} · ${m.model_name} `, FXD.el("span", { class: "note" }, `${m.model_type}, id ${m.id}, ${entry.n_runs} run(s), ${entry.inference.count} forecast(s) logged`)),
    FXD.el("h3", {}, "Runs"),
    FXD.el("table", { class: "grid small" }, FXD.el("thead", {}, FXD.el("tr", {},
      ...["Run", "Name", "Status", "Started", "Epochs", "Train loss", "Val loss", "Device", "Error", ""].map((h) => FXD.el("th", {}, h)))),
      FXD.el("tbody", {}, ...runs)),
    FXD.el("h3", {}, "Checkpoints"),
    FXD.el("table", { class: "grid small" }, FXD.el("thead", {}, FXD.el("tr", {},
      ...["File", "Epoch", "", "Val loss", "Size", "Written"].map((h) => FXD.el("th", {}, h)))),
      FXD.el("tbody", {}, ...ckpts)),
    metrics,
    FXD.el("details", {}, FXD.el("summary", {}, "Configs"), FXD.el("pre", {}, JSON.stringify(configs, null, 2))),
    FXD.el("p", {}, FXD.el("a", { href: `/?asset=${m.asset}&model=${encodeURIComponent(m.model_name)}` }, "Forecast with this model"), " · ",
      FXD.el("a", { href: `/evaluate?asset=${m.asset}&model=${encodeURIComponent(m.model_name)}` }, "Evaluate it")));
}

async function showLog(id) {
  FXD.$("log-card").hidden = false;
  FXD.$("log-run").textContent = id;
  try {
    FXD.$("run-log").textContent = (await FXD.api(`/v1/runs/${id}/log`)).text;
    FXD.$("run-log").scrollTop = FXD.$("run-log").scrollHeight;
  } catch (e) {
    FXD.$("run-log").textContent = e.message;
  }
  FXD.$("log-card").scrollIntoView();
}

async function resume(id) {
  try {
    const job = await FXD.api(`/v1/runs/${id}/resume`, { method: "POST" });
    FXD.show("message", `Resuming run ${id} in job ${job.id}: follow it on the Train page.`, true);
    FXD.$("message").append(" ", FXD.el("a", { href: "/train", id: "follow-resume" }, "Open the Train page"));
  } catch (e) {
    FXD.show("message", e.message);
  }
}

async function markStale() {
  try {
    const r = await FXD.api("/v1/runs/mark-stale", { method: "POST" });
    FXD.$("stale-result").textContent = r.marked.length ?
      `marked interrupted: run(s) ${r.marked.map((x) => x.id).join(", ")}` : "no stale run";
    load();
  } catch (e) {
    FXD.show("message", e.message);
  }
}

async function main() {
  try {
    const { models } = await FXD.api("/v1/models");
    const assets = [...new Set(models.map((m) => m.asset))].sort();
    FXD.fill(FXD.$("asset"), assets.map((a) => [a, a]), FXD.param("asset") || undefined);
  } catch (e) {
    FXD.show("message", e.message);
    return;
  }
  FXD.$("asset").addEventListener("change", load);
  FXD.$("mark-stale").addEventListener("click", markStale);
  load();
}

main();
