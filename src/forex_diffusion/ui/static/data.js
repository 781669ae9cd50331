// Data page: what the store holds per asset (range, bars, gaps) and the import form with the
// importer's per-file summary and bad-row messages.
"use strict";

async function load() {
  try {
    const d = await FXD.api("/v1/data");
    FXD.$("data-dir").textContent = d.data_dir;
    FXD.fill(FXD.$("import-format"), d.formats.map((f) => [f, f]));
    const rows = d.assets.map((a) => FXD.el("tr", {},
      FXD.el("td", {}, a.asset + (a.synthetic ? " (synthetic)" : "")), FXD.el("td", {}, a.base_timeframe),
      FXD.el("td", {}, FXD.time(a.first)), FXD.el("td", {}, FXD.time(a.last)),
      FXD.el("td", {}, a.bars.toLocaleString()),
      FXD.el("td", {}, a.gap_count ? FXD.el("a", { href: "#gaps-" + a.asset }, String(a.gap_count)) : "0"),
      FXD.el("td", {}, a.closures), FXD.el("td", { title: a.sources.join(", ") }, a.sources.slice(-2).join(", "))));
    if (!rows.length) rows.push(FXD.el("tr", {}, FXD.el("td", { colspan: 8 }, "The store is empty: import candle files below.")));
    FXD.$("assets-table").tBodies[0].replaceChildren(...rows);
    FXD.$("gaps").replaceChildren(...d.assets.filter((a) => a.gaps.length).map((a) => FXD.el("details", { id: "gaps-" + a.asset },
      FXD.el("summary", {}, `${a.asset}: longest weekday gaps (of ${a.gap_count})`),
      FXD.el("table", { class: "grid small" }, FXD.el("tbody", {}, ...a.gaps.map((g) => FXD.el("tr", {},
        FXD.el("td", {}, FXD.time(g.start)), FXD.el("td", {}, FXD.time(g.end)), FXD.el("td", {}, `${Math.round(g.minutes)} min`))))))));
  } catch (e) {
    FXD.show("message", e.message);
  }
}

async function submit(ev) {
  ev.preventDefault();
  const form = new FormData();
  form.append("asset", FXD.$("import-asset").value.trim());
  form.append("format", FXD.$("import-format").value);
  if (FXD.$("import-tz").value.trim()) form.append("tz", FXD.$("import-tz").value.trim());
  form.append("skip_bad", FXD.$("import-skip").checked ? "true" : "false");
  for (const f of FXD.$("import-files").files) form.append("files", f, f.name);
  FXD.show("message", "Importing…", true);
  FXD.$("import-report").replaceChildren();
  try {
    const r = await FXD.api("/v1/data/import", { method: "POST", body: form });
    FXD.show("message", `${r.asset}: ${r.rows_read} rows read, ${r.rows_written} new bars written, ` +
      `${r.already_stored} already stored, ${r.duplicates_dropped} duplicates dropped; the store holds ${r.total_bars} bars.`, true);
    const files = r.files.map((f) => FXD.el("tr", {}, FXD.el("td", {}, f.file), FXD.el("td", {}, f.format), FXD.el("td", {}, f.tz),
      FXD.el("td", {}, f.rows_read), FXD.el("td", {}, f.rows_valid), FXD.el("td", {}, f.duplicates), FXD.el("td", {}, f.bad_rows),
      FXD.el("td", {}, FXD.time(f.first)), FXD.el("td", {}, FXD.time(f.last))));
    FXD.$("import-report").replaceChildren(
      FXD.el("table", { class: "grid small" }, FXD.el("thead", {}, FXD.el("tr", {},
        ...["File", "Format", "Time zone", "Rows", "Valid", "Duplicates", "Bad rows", "First", "Last"].map((h) => FXD.el("th", {}, h)))),
        FXD.el("tbody", {}, ...files)),
      ...(r.bad_rows.length ? [FXD.el("h3", {}, "Skipped bad rows"), FXD.el("pre", { class: "log" }, r.bad_rows.join("\n"))] : []));
    load();
  } catch (e) {
    FXD.show("message", e.message);
  }
}

FXD.$("import-form").addEventListener("submit", submit);
load();
