// Shared by every page: the API client (bearer token from session storage), the token form,
// small DOM helpers and a Server-Sent-Events reader that can send the token.
"use strict";

const TOKEN_KEY = "fxd-token";

const FXD = {
  token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },

  headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = FXD.token();
    if (t) h["Authorization"] = "Bearer " + t;
    return h;
  },

  // fetch a /v1 endpoint; resolves to the JSON body, rejects with an Error whose message is
  // the service's own message (e.g. a ConfigError naming the key path) and .status set.
  async api(path, options) {
    const opts = Object.assign({}, options || {});
    const isForm = opts.body instanceof FormData;
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    opts.headers = FXD.headers(isForm || !opts.body ? {} : { "Content-Type": "application/json" });
    const res = await fetch(path, opts);
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = { message: text }; }
    if (!res.ok) {
      const err = new Error((body && body.message) || res.statusText);
      err.status = res.status;
      err.body = body;
      if (res.status === 401) FXD.banner("The service needs a token: enter it at the top right and press Log in.");
      throw err;
    }
    return body;
  },

  // Server-Sent Events over fetch (EventSource cannot send an Authorization header).
  // onEvent(name, data) per event; returns an AbortController.
  stream(path, onEvent, onError) {
    const ctrl = new AbortController();
    (async () => {
      try {
        const res = await fetch(path, { headers: FXD.headers(), signal: ctrl.signal });
        if (!res.ok) throw new Error("stream " + path + ": HTTP " + res.status);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let name = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).trim());
            }
            if (data.length) onEvent(name, JSON.parse(data.join("\n")));
          }
        }
      } catch (e) {
        if (!ctrl.signal.aborted && onError) onError(e);
      }
    })();
    return ctrl;
  },

  $(id) { return document.getElementById(id); },

  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  },

  show(id, text, ok) {
    const node = FXD.$(id);
    if (!node) return;
    node.hidden = !text;
    node.textContent = text || "";
    node.classList.toggle("ok", Boolean(ok));
  },

  banner(text) {
    const b = FXD.$("banner");
    b.hidden = !text;
    b.textContent = text || "";
  },

  fill(select, items, keep) {
    const old = keep !== undefined ? keep : select.value;
    select.replaceChildren(...items.map(([value, label]) => FXD.el("option", { value }, label)));
    if (items.some(([v]) => v === old)) select.value = old;
  },

  num(x, digits) { return x === null || x === undefined || Number.isNaN(x) ? "—" : Number(x).toFixed(digits); },
  // an ISO time (UTC) as "YYYY-MM-DD HH:MM UTC"
  time(iso) { return iso ? new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "—"; },
  duration(s) {
    if (s === null || s === undefined) return "—";
    s = Math.round(s);
    return (s >= 3600 ? Math.floor(s / 3600) + " h " : "") + (s >= 60 ? Math.floor((s % 3600) / 60) + " min " : "") + (s % 60) + " s";
  },

  // assets from the store and registered models, for the pickers of several pages
  async assetsAndModels() {
    const [data, models] = await Promise.all([FXD.api("/v1/data"), FXD.api("/v1/models")]);
    return { data, models: models.models };
  },

  param(name) { return new URLSearchParams(location.search).get(name); },
};

// header: token form and service status
(function header() {
  const input = FXD.$("token-input");
  FXD.$("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    location.reload();
  });
  FXD.$("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  input.placeholder = FXD.token() ? "token stored (session)" : "API token";
  const pill = FXD.$("service-status");
  fetch("/health").then((r) => {
    pill.textContent = r.ok ? "service ok" : "service down";
    pill.className = "pill " + (r.ok ? "ok" : "bad");
  }).catch(() => { pill.textContent = "service unreachable"; pill.className = "pill bad"; });
})();
