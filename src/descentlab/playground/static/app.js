// descentlab playground: draws what the server computes. No optimizer rule lives here:
// every point, gradient and state term comes from /api/paths, computed by descentlab's classes.
"use strict";

const COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const MAX_GIF_FRAMES = 120;

const app = {
  schema: null,
  catalogue: {},
  lang: "en",
  surface: null, // the grid from /api/surface
  paths: null, // the answer of /api/paths
  state: null, // everything the view depends on; mirrored in the URL
  playing: false,
  pending: 0, // requests in flight
  waiting: false, // a change waits for its request to be sent
  // The GIF's frames (data URLs) together stay under this, just below the server's 32 MiB limit on
  // a request: a view whose frames would pass it sends every second frame (or fourth) instead of failing.
  gifBudget: 31 * 1024 * 1024,
};
window.playground = app; // read by the browser tests

const $ = (id) => document.getElementById(id);

// -- messages ---------------------------------------------------------------------

function t(key, params) {
  let text = app.catalogue[key];
  if (text === undefined) {
    console.error(`missing message ${key} in ${app.lang}`);
    text = key;
  }
  for (const [name, value] of Object.entries(params || {})) text = text.split(`{${name}}`).join(String(value));
  return text;
}

async function loadCatalogue(lang) {
  const response = await fetch(`/static/i18n/${lang}.json`);
  app.catalogue = await response.json();
  app.lang = lang;
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  // Labels that are read aloud rather than shown (the canvases') are translated too.
  for (const el of document.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  $("lang").value = lang;
}

function browserLanguage() {
  const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  return preferred.some((l) => (l || "").toLowerCase().startsWith("zh")) ? "zh" : "en";
}

function showError(body) {
  const box = $("message");
  // Kept so that a switch of language words the message again (the box has no single data-i18n key).
  app.error = body || null;
  if (!body) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  // The server names its message in the catalogue where it can; the English line is the fallback.
  const known = body.key && app.catalogue[body.key] !== undefined;
  // A field the page has a label for (updates, seed, batch size) is named by its label.
  const params = { ...body.params };
  if (params.field && typeof app.catalogue[params.field] === "string") params.field = t(params.field);
  box.textContent = known ? t(body.key, params) : `${t("error.server")} ${body.error}`;
  box.hidden = false;
}

// -- state and URL -----------------------------------------------------------------

function defaultState() {
  return {
    surface: "rosenbrock",
    formula: "x^2 + 10*y^2",
    bounds: [[-3, 3], [-3, 3]],
    start: null,
    updates: 200,
    regime: "full-batch",
    batch_size: 20,
    seed: 0,
    runs: [
      { optimizer: "sgd", hyperparameters: { lr: 0.002, momentum: 0.9 }, mistakes: [] },
      { optimizer: "adam", hyperparameters: { lr: 0.05 }, mistakes: [] },
    ],
    t: 0,
    speed: 20,
  };
}

function stateFromURL() {
  const state = defaultState();
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("s")) return state;
  try {
    state.surface = params.get("s");
    if (params.has("f")) state.formula = params.get("f");
    if (params.has("b")) state.bounds = JSON.parse(params.get("b"));
    if (params.has("start")) state.start = JSON.parse(params.get("start"));
    if (params.has("n")) state.updates = Number(params.get("n"));
    if (params.has("r")) state.regime = params.get("r");
    if (params.has("bs")) state.batch_size = Number(params.get("bs"));
    if (params.has("seed")) state.seed = Number(params.get("seed"));
    if (params.has("o")) state.runs = JSON.parse(params.get("o"));
    if (params.has("t")) state.t = Number(params.get("t"));
    if (params.has("v")) state.speed = Number(params.get("v"));
    checkState(state);
  } catch (err) {
    console.warn("the address holds a view that cannot be read; starting from the default", err);
    return defaultState();
  }
  return state;
}

// An address names only what this server offers, in the form the page keeps (values the server
// must range-check, such as a learning rate, are left to it: it answers with a message).
function checkState(state) {
  const fail = (what) => {
    throw new Error(`unreadable ${what}`);
  };
  const surfaces = [...app.schema.surfaces.map((x) => x.name), "custom"];
  if (!surfaces.includes(state.surface)) fail(`surface ${state.surface}`);
  // Counts are whole and not negative (a negative or fractional update indexes no point of a path);
  // whether they are within the server's limits is the server's to say.
  for (const key of ["updates", "batch_size", "seed", "t"]) {
    if (!Number.isInteger(state[key]) || state[key] < 0) fail(key);
  }
  if (!Number.isFinite(state.speed) || state.speed < 1) fail("speed");
  if (!Array.isArray(state.runs) || state.runs.length === 0) fail("runs");
  for (const run of state.runs) {
    const info = run && app.schema.optimizers[run.optimizer];
    if (!info) fail(`optimizer ${run && run.optimizer}`);
    if (typeof run.hyperparameters !== "object" || run.hyperparameters === null) fail("hyperparameters");
    run.mistakes = run.mistakes || [];
    if (!Array.isArray(run.mistakes) || run.mistakes.some((m) => !info.mistakes.some((x) => x.name === m))) {
      fail("mistakes");
    }
  }
  if (state.surface === "custom") {
    const pair = (p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite);
    if (typeof state.formula !== "string" || !Array.isArray(state.bounds) || !state.bounds.every(pair)) {
      fail("custom surface");
    }
  }
  if (state.start !== null && !(Array.isArray(state.start) && state.start.length === 2 && state.start.every(Number.isFinite))) {
    fail("start");
  }
}

function saveURL() {
  const s = app.state;
  const params = new URLSearchParams();
  params.set("s", s.surface);
  if (s.surface === "custom") {
    params.set("f", s.formula);
    params.set("b", JSON.stringify(s.bounds));
  }
  if (s.start) params.set("start", JSON.stringify(s.start));
  params.set("n", s.updates);
  params.set("r", s.regime);
  params.set("bs", s.batch_size);
  params.set("seed", s.seed);
  params.set("o", JSON.stringify(s.runs));
  params.set("t", s.t);
  params.set("v", s.speed);
  params.set("lang", app.lang);
  history.replaceState(null, "", `#${params}`);
}

// -- the server --------------------------------------------------------------------

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw data;
  return data;
}

function surfaceRequest() {
  const s = app.state;
  return s.surface === "custom" ? { surface: "custom", formula: s.formula, bounds: s.bounds } : { surface: s.surface };
}

function pathRequest() {
  const s = app.state;
  const runs = [];
  for (const run of s.runs) {
    // A run may have a regime of its own, to compare regimes side by side from the same seed.
    const regime = run.regime ? { regime: run.regime } : {};
    runs.push({ optimizer: run.optimizer, hyperparameters: run.hyperparameters, ...regime });
    for (const mistake of run.mistakes || []) {
      // The mistaken form runs with its run's learning rate, betas and eps (those the rule has).
      const values = { ...defaults(run.optimizer), ...run.hyperparameters };
      const options = app.schema.optimizers[run.optimizer].mistakes.find((m) => m.name === mistake).options;
      const hyperparameters = { lr: values.lr };
      for (const key of options) hyperparameters[key] = values[key];
      runs.push({ mistake, hyperparameters, ...regime });
    }
  }
  const body = { ...surfaceRequest(), updates: s.updates, regime: s.regime, seed: s.seed, runs };
  if (s.start) body.start = s.start;
  // Without noise every regime sees the exact gradient and a batch size means nothing (a typed
  // formula has a single "sample", so any other size would be refused): it is not sent.
  if (s.regime === "mini-batch" && noisy()) body.batch_size = s.batch_size;
  return body;
}

// Whether the surface has noise, so that the regime and the batch size change the path.
function noisy() {
  const info = app.schema.surfaces.find((x) => x.name === app.state.surface);
  return Boolean(info && info.noise !== "none");
}

// The number of updates of the paths drawn: the state's may be one the server has refused.
function computed() {
  return app.paths ? app.paths.updates : app.state.updates;
}

async function busy(task) {
  app.pending += 1;
  document.body.dataset.status = "busy";
  // Only the latest request may set or clear the message: an older one that succeeds after a newer
  // one was refused must not wipe the refusal off the page.
  const ticket = (app.messageTicket = (app.messageTicket || 0) + 1);
  try {
    await task();
    if (ticket === app.messageTicket) showError(null);
  } catch (err) {
    if (err && err.error !== undefined) {
      if (ticket === app.messageTicket) showError(err);
    } else throw err;
  } finally {
    app.pending -= 1;
    if (app.pending === 0 && !app.waiting) document.body.dataset.status = "ready";
  }
}

// Answers can arrive out of order; only the latest request's answer of each kind is kept.
const latest = { surface: 0, paths: 0 };

async function refreshSurface() {
  await busy(async () => {
    const ticket = ++latest.surface;
    const surface = await post("/api/surface", surfaceRequest());
    if (ticket !== latest.surface) return;
    app.surface = surface;
    // Only the batch size's limit follows the new surface: a formula typed meanwhile stays in its box.
    $("batch-size").max = surface.samples;
    await refreshPaths();
  });
}

async function refreshPaths() {
  await busy(async () => {
    const ticket = ++latest.paths;
    const paths = await post("/api/paths", pathRequest());
    if (ticket !== latest.paths) return;
    app.paths = paths;
    app.state.t = Math.max(0, Math.min(app.state.t, paths.updates));
    draw();
  });
}

// -- the controls ------------------------------------------------------------------

function defaults(name) {
  const out = {};
  for (const c of app.schema.optimizers[name].controls) out[c.name] = c.default;
  return out;
}

function sliderValue(control, position) {
  // Position in [0, 1000]; log controls map it to a power of ten.
  const p = position / 1000;
  if (control.log) return Number((10 ** (Math.log10(control.low) + p * (Math.log10(control.high) - Math.log10(control.low)))).toPrecision(3));
  return Number((control.low + p * (control.high - control.low)).toPrecision(4));
}

function sliderPosition(control, low, high, value) {
  if (control.log) {
    const v = Math.min(Math.max(value, low), high);
    return Math.round((1000 * (Math.log10(v) - Math.log10(low))) / (Math.log10(high) - Math.log10(low)));
  }
  return Math.round((1000 * (Math.min(Math.max(value, low), high) - low)) / (high - low));
}

function makeSlider(control, low, high, value, onChange, label) {
  const wrap = document.createElement("label");
  wrap.className = "control";
  const name = document.createElement("span");
  name.dataset.notranslate = "";
  name.textContent = label;
  const range = document.createElement("input");
  range.type = "range";
  range.min = 0;
  range.max = 1000;
  range.dataset.control = label;
  const sub = { ...control, low, high };
  range.value = sliderPosition(sub, low, high, value);
  const shown = document.createElement("output");
  shown.dataset.notranslate = "";
  shown.textContent = value;
  range.addEventListener("input", () => {
    const v = sliderValue(sub, Number(range.value));
    shown.textContent = v;
    onChange(v);
  });
  wrap.append(name, range, shown);
  return wrap;
}

function renderRuns() {
  const box = $("runs");
  box.textContent = "";
  app.state.runs.forEach((run, i) => {
    const info = app.schema.optimizers[run.optimizer];
    const values = { ...defaults(run.optimizer), ...run.hyperparameters };
    const card = document.createElement("fieldset");
    card.className = "run";
    card.style.borderColor = COLORS[i % COLORS.length];
    const legend = document.createElement("legend");
    const name = document.createElement("span");
    name.dataset.notranslate = "";
    name.textContent = run.optimizer;
    name.style.color = COLORS[i % COLORS.length];
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.dataset.i18n = "remove";
    remove.textContent = t("remove");
    remove.addEventListener("click", () => {
      app.state.runs.splice(i, 1);
      renderRuns();
      changed();
    });
    legend.append(name, " ", remove);
    card.append(legend);
    const set = (key, value) => {
      run.hyperparameters[key] = value;
      changed();
    };
    for (const control of info.controls) {
      const value = values[control.name];
      if (control.kind === "float") {
        card.append(makeSlider(control, control.low, control.high, value, (v) => set(control.name, v), control.name));
      } else if (control.kind === "pair") {
        const pair = [...value];
        [0, 1].forEach((k) => {
          card.append(
            makeSlider(control, control.low[k], control.high[k], pair[k], (v) => {
              pair[k] = v;
              set(control.name, [...pair]);
            }, `${control.name}[${k}]`),
          );
        });
      } else if (control.kind === "flag") {
        const wrap = document.createElement("label");
        wrap.className = "control";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = Boolean(value);
        box.addEventListener("change", () => set(control.name, box.checked));
        const label = document.createElement("span");
        label.dataset.notranslate = "";
        label.textContent = control.name;
        wrap.append(label, box);
        card.append(wrap);
      } else {
        const wrap = document.createElement("label");
        wrap.className = "control";
        const label = document.createElement("span");
        label.dataset.notranslate = "";
        label.textContent = control.name;
        const select = document.createElement("select");
        select.dataset.notranslate = "";
        for (const option of control.options) select.append(new Option(option, option));
        select.value = value;
        select.addEventListener("change", () => set(control.name, select.value));
        wrap.append(label, select);
        card.append(wrap);
      }
    }
    const regimeWrap = document.createElement("label");
    regimeWrap.className = "control";
    const regimeLabel = document.createElement("span");
    regimeLabel.dataset.i18n = "run_regime";
    regimeLabel.textContent = t("run_regime");
    const regimeSelect = document.createElement("select");
    regimeSelect.dataset.runRegime = String(i);
    for (const value of ["", ...app.schema.regimes]) {
      const key = value ? `regime.${value}` : "regime.setup";
      const option = new Option(t(key), value);
      option.dataset.i18n = key;
      regimeSelect.append(option);
    }
    regimeSelect.value = run.regime || "";
    regimeSelect.addEventListener("change", () => {
      run.regime = regimeSelect.value || undefined;
      changed();
    });
    regimeWrap.append(regimeLabel, regimeSelect);
    card.append(regimeWrap);
    for (const mistake of info.mistakes) {
      const wrap = document.createElement("label");
      wrap.className = "mistake";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.dataset.mistake = mistake.name;
      box.checked = (run.mistakes || []).includes(mistake.name);
      box.addEventListener("change", () => {
        run.mistakes = (run.mistakes || []).filter((m) => m !== mistake.name);
        if (box.checked) run.mistakes.push(mistake.name);
        changed();
      });
      const text = document.createElement("span");
      text.dataset.i18n = `mistake.${mistake.name}`;
      text.textContent = t(`mistake.${mistake.name}`);
      const formula = document.createElement("span");
      formula.className = "formula";
      formula.dataset.notranslate = "";
      formula.textContent = mistake.wrong;
      wrap.append(box, " ", text, " ", formula);
      card.append(wrap);
    }
    box.append(card);
  });
}

function renderSurfaceChoices() {
  const select = $("surface");
  const current = app.state.surface;
  select.textContent = "";
  for (const s of app.schema.surfaces) {
    const base = s.name.replace(/-(noisy|outliers)$/, "");
    const suffix = s.noise === "none" ? "" : ` (${t(`noise.${s.noise}`)})`;
    select.append(new Option(`${t(`surface.${base}`)}${suffix}`, s.name));
  }
  select.append(new Option(t("surface.custom"), "custom"));
  select.value = current;
}

function renderAddChoices() {
  const select = $("add-choice");
  const current = select.value;
  select.textContent = "";
  for (const name of Object.keys(app.schema.optimizers)) select.append(new Option(name, name));
  select.value = current || "rmsprop";
}

function syncInputs() {
  const s = app.state;
  $("surface").value = s.surface;
  $("custom").hidden = s.surface !== "custom";
  $("formula").value = s.formula;
  [["x0", 0, 0], ["x1", 0, 1], ["y0", 1, 0], ["y1", 1, 1]].forEach(([id, a, b]) => ($(id).value = s.bounds[a][b]));
  $("regime").value = s.regime;
  $("batch-size").value = s.batch_size;
  $("batch-size").disabled = s.regime !== "mini-batch" || !noisy();
  if (app.surface) $("batch-size").max = app.surface.samples;
  $("seed").value = s.seed;
  $("seed").max = app.schema.limits.seed;
  $("updates").value = s.updates;
  $("updates").max = app.schema.limits.updates;
  $("speed").value = s.speed;
  const info = app.schema.surfaces.find((x) => x.name === s.surface);
  $("surface-formula").textContent = info ? `f(x, y) = ${info.formula}` : "";
  $("regime-note").hidden = Boolean(info && info.noise !== "none");
}

let timer = null;
function changed() {
  // Sliders fire many events; one request per pause is enough. The page counts as
  // busy from now, so that nobody (a test included) reads the paths of the old settings.
  document.body.dataset.status = "busy";
  clearTimeout(timer);
  app.waiting = true;
  timer = setTimeout(() => {
    app.waiting = false;
    refreshPaths();
  }, 120);
  saveURL();
}

// -- drawing -----------------------------------------------------------------------

function toCanvas(canvas, x, y) {
  const [[x0, x1], [y0, y1]] = app.surface.bounds;
  return [((x - x0) / (x1 - x0)) * canvas.width, (1 - (y - y0) / (y1 - y0)) * canvas.height];
}

function fromCanvas(canvas, px, py) {
  const [[x0, x1], [y0, y1]] = app.surface.bounds;
  return [x0 + (px / canvas.width) * (x1 - x0), y0 + (1 - py / canvas.height) * (y1 - y0)];
}

function levels(z) {
  const finite = z.filter((v) => v !== null);
  const low = Math.min(...finite);
  const shift = (v) => Math.log10(v - low + 1e-3);
  return { low, shift, top: shift(Math.max(...finite)), bottom: shift(low) };
}

function drawSurface(ctx, canvas) {
  const { size, z } = app.surface;
  const scale = levels(z);
  const image = ctx.createImageData(size, size);
  for (let j = 0; j < size; j++) {
    for (let i = 0; i < size; i++) {
      const v = z[j * size + i];
      const u = v === null ? 1 : (scale.shift(v) - scale.bottom) / (scale.top - scale.bottom || 1);
      const k = 4 * ((size - 1 - j) * size + i);
      image.data[k] = 240 - 120 * u;
      image.data[k + 1] = 245 - 70 * u;
      image.data[k + 2] = 255 - 20 * u;
      image.data[k + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = off.height = size;
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  // Contour lines by marching squares on evenly spaced log levels.
  ctx.strokeStyle = "rgba(60, 60, 90, 0.45)";
  ctx.lineWidth = 1;
  const cw = canvas.width / (size - 1);
  const ch = canvas.height / (size - 1);
  const at = (i, j) => z[j * size + i];
  for (let l = 1; l < 16; l++) {
    const level = 10 ** (scale.bottom + ((scale.top - scale.bottom) * l) / 16) + scale.low - 1e-3;
    ctx.beginPath();
    for (let j = 0; j < size - 1; j++) {
      for (let i = 0; i < size - 1; i++) {
        const c = [at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)];
        if (c.includes(null)) continue;
        const pts = [];
        const edges = [[0, 1, [0, 0], [1, 0]], [1, 2, [1, 0], [1, 1]], [2, 3, [1, 1], [0, 1]], [3, 0, [0, 1], [0, 0]]];
        for (const [a, b, pa, pb] of edges) {
          if ((c[a] < level) !== (c[b] < level)) {
            const f = (level - c[a]) / (c[b] - c[a]);
            const gx = i + pa[0] + f * (pb[0] - pa[0]);
            const gy = j + pa[1] + f * (pb[1] - pa[1]);
            pts.push([gx * cw, canvas.height - gy * ch]);
          }
        }
        for (let k = 0; k + 1 < pts.length; k += 2) {
          ctx.moveTo(pts[k][0], pts[k][1]);
          ctx.lineTo(pts[k + 1][0], pts[k + 1][1]);
        }
      }
    }
    ctx.stroke();
  }
  ctx.fillStyle = "#222";
  for (const [x, y] of app.surface.minima) {
    const [px, py] = toCanvas(canvas, x, y);
    ctx.fillText("★", px - 4, py + 4);
  }
}

function arrow(ctx, x, y, dx, dy, color) {
  const length = Math.hypot(dx, dy);
  if (!(length > 0)) return;
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + dx, y + dy);
  ctx.stroke();
  const ux = dx / length;
  const uy = dy / length;
  ctx.beginPath();
  ctx.moveTo(x + dx, y + dy);
  ctx.lineTo(x + dx - 7 * ux + 4 * uy, y + dy - 7 * uy - 4 * ux);
  ctx.lineTo(x + dx - 7 * ux - 4 * uy, y + dy - 7 * uy + 4 * ux);
  ctx.fill();
}

function termAt(run, key, t) {
  const term = run.terms.find((x) => x.key === key);
  return term && t >= 1 ? term.values[t - 1] : null;
}

function drawPaths(ctx, canvas, update) {
  const colors = runColors();
  app.paths.runs.forEach((run, r) => {
    const color = colors[r];
    // A coordinate that overflowed comes as null (JSON has no infinity): the path is drawn up to its
    // last finite point, where a null would otherwise be read as 0 and drawn to the origin.
    let last = Math.min(update, run.points.length - 1);
    const broken = run.points.findIndex(([x, y]) => !Number.isFinite(x) || !Number.isFinite(y));
    if (broken !== -1) last = Math.min(last, broken - 1);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash(run.mistake ? [6, 4] : []);
    ctx.beginPath();
    run.points.slice(0, last + 1).forEach(([x, y], k) => {
      const [px, py] = toCanvas(canvas, x, y);
      if (k === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
    ctx.stroke();
    ctx.setLineDash([]);
    const [px, py] = toCanvas(canvas, ...run.points[last]);
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(px, py, 4, 0, 2 * Math.PI);
    ctx.fill();
    if (last >= 1 && last === update) {
      // The gradient (descent direction, fixed length) and the momentum, from this update.
      const g = run.grad[last - 1];
      if (g[0] !== null && g[1] !== null) {
        const n = Math.hypot(g[0], g[1]) || 1;
        arrow(ctx, px, py, (-40 * g[0]) / n, (40 * g[1]) / n, "#333");
      }
      const m = run.momentum ? termAt(run, run.momentum, last) : null;
      if (m && m[0] !== null && m[1] !== null) {
        const n = Math.hypot(m[0], m[1]) || 1;
        arrow(ctx, px, py, (-30 * m[0]) / n, (30 * m[1]) / n, color);
      }
      // The per-coordinate effective learning rate as a box: wider where x gets the larger step.
      const e = run.effective_lr ? run.effective_lr[last - 1] : null;
      if (e && e[0] && e[1]) {
        const big = Math.max(e[0], e[1]);
        ctx.strokeStyle = color;
        ctx.lineWidth = 1;
        ctx.strokeRect(px - (12 * e[0]) / big, py - (12 * e[1]) / big, (24 * e[0]) / big, (24 * e[1]) / big);
      }
    }
  });
  const start = app.paths.start;
  const [sx, sy] = toCanvas(canvas, start[0], start[1]);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 1.5;
  ctx.strokeRect(sx - 5, sy - 5, 10, 10);
}

function runColors() {
  // A mistaken rule is drawn in its optimizer's colour, dashed.
  const colors = [];
  app.state.runs.forEach((run, i) => {
    colors.push(COLORS[i % COLORS.length]);
    for (const _ of run.mistakes || []) colors.push(COLORS[i % COLORS.length]);
  });
  return colors;
}

function drawLoss(update) {
  const canvas = $("loss");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const all = app.paths.runs.flatMap((r) => r.loss).filter((v) => v !== null);
  if (!all.length) return;
  const low = Math.min(...all);
  const shift = (v) => Math.log10(v - low + 1e-6);
  const top = Math.max(...all.map(shift));
  const bottom = shift(low);
  const n = computed();
  const colors = runColors();
  const pad = 30;
  app.paths.runs.forEach((run, r) => {
    ctx.strokeStyle = colors[r];
    ctx.setLineDash(run.mistake ? [6, 4] : []);
    ctx.beginPath();
    run.loss.forEach((v, k) => {
      if (v === null) return;
      const x = pad + ((canvas.width - 2 * pad) * k) / n;
      const y = canvas.height - pad - ((canvas.height - 2 * pad) * (shift(v) - bottom)) / (top - bottom || 1);
      if (k === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  ctx.setLineDash([]);
  const x = pad + ((canvas.width - 2 * pad) * update) / n;
  ctx.strokeStyle = "#888";
  ctx.beginPath();
  ctx.moveTo(x, pad / 2);
  ctx.lineTo(x, canvas.height - pad / 2);
  ctx.stroke();
  ctx.fillStyle = "#333";
  ctx.fillText("0", pad, canvas.height - 8);
  ctx.fillText(String(n), canvas.width - pad - 10, canvas.height - 8);
}

function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return v.toPrecision(6);
  return v.map(fmt).join(", ");
}

function numberRow(table, key, symbol, value) {
  const row = table.insertRow();
  const name = row.insertCell();
  if (key) {
    name.dataset.i18n = key;
    name.textContent = t(key);
  }
  if (symbol) {
    const s = document.createElement("span");
    s.className = "symbol";
    s.dataset.notranslate = "";
    s.textContent = ` ${symbol}`;
    name.append(s);
  }
  const cell = row.insertCell();
  cell.className = "num";
  cell.dataset.notranslate = "";
  cell.textContent = fmt(value);
  return cell;
}

function drawNumbers(update) {
  const box = $("cards");
  box.textContent = "";
  const colors = runColors();
  app.paths.runs.forEach((run, r) => {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.run = run.label;
    card.style.borderColor = colors[r];
    const title = document.createElement("h3");
    title.dataset.notranslate = "";
    title.style.color = colors[r];
    title.textContent = run.label;
    card.append(title);
    if (run.regime) {
      const regime = document.createElement("p");
      regime.className = "note";
      regime.dataset.i18n = `regime.${run.regime}`;
      regime.textContent = t(`regime.${run.regime}`);
      card.append(regime);
    }
    const k = Math.min(update, run.points.length - 1);
    if (run.diverged_at !== null && update >= run.diverged_at) {
      const p = document.createElement("p");
      p.className = "diverged";
      p.dataset.i18n = "diverged";
      p.textContent = t("diverged", { update: run.diverged_at });
      card.append(p);
    }
    const table = document.createElement("table");
    numberRow(table, "point", "θ", run.points[k]).dataset.term = "point";
    numberRow(table, "loss_value", "f(θ)", run.loss[k]).dataset.term = "loss";
    if (k >= 1) {
      numberRow(table, "gradient", "g_t", run.grad[k - 1]).dataset.term = "grad";
      if (run.momentum) numberRow(table, "momentum", null, termAt(run, run.momentum, k)).dataset.term = "momentum";
      if (run.effective_lr) numberRow(table, "effective_lr", null, run.effective_lr[k - 1]).dataset.term = "effective_lr";
      for (const term of run.terms) {
        const key = term.key === "step" ? "term.step" : "term.state";
        numberRow(table, key, term.key === "step" ? "θ_t − θ_{t−1}" : `${term.symbol} (${term.key})`, term.values[k - 1]).dataset.term = term.key;
      }
    }
    card.append(table);
    const formula = document.createElement("pre");
    formula.className = "formula";
    formula.dataset.notranslate = "";
    formula.textContent = run.formula.join("\n");
    card.append(formula);
    box.append(card);
  });
}

function draw() {
  if (!app.surface || !app.paths) return;
  const step = app.state.t;
  const canvas = $("contour");
  const ctx = canvas.getContext("2d");
  drawSurface(ctx, canvas);
  drawPaths(ctx, canvas, step);
  drawLoss(step);
  drawNumbers(step);
  $("t").textContent = `${step} / ${computed()}`;
  saveURL();
}

// -- playback ----------------------------------------------------------------------

let last = 0;
let carry = 0;
function tick(now) {
  if (!app.playing) return;
  const dt = last ? (now - last) / 1000 : 0;
  last = now;
  carry += dt * app.state.speed;
  const advance = Math.floor(carry);
  carry -= advance;
  if (advance > 0) {
    app.state.t = Math.min(app.state.t + advance, computed());
    draw();
  }
  if (app.state.t >= computed()) setPlaying(false);
  else requestAnimationFrame(tick);
}

function setPlaying(on) {
  app.playing = on;
  const button = $("play");
  button.dataset.i18n = on ? "pause" : "play";
  button.textContent = t(button.dataset.i18n);
  if (on) {
    if (app.state.t >= computed()) app.state.t = 0;
    last = 0;
    carry = 0;
    requestAnimationFrame(tick);
  }
}

function stepTo(value) {
  setPlaying(false);
  app.state.t = Math.max(0, Math.min(value, computed()));
  draw();
}

// -- export ------------------------------------------------------------------------

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function exportPNG() {
  $("contour").toBlob((blob) => download(blob, "descentlab-playground.png"), "image/png");
}

async function exportGIF() {
  setPlaying(false);
  const keep = app.state.t;
  const n = computed();
  let every = Math.max(1, Math.ceil(n / MAX_GIF_FRAMES));
  const canvas = $("contour");
  let frames = [];
  let shown = []; // the update of each frame
  let size = 0;
  for (let k = 0; ; k = Math.min(k + every, n)) {
    // The last frame is update n even where `every` does not divide n: the animation ends where the paths do.
    app.state.t = k;
    const ctx = canvas.getContext("2d");
    drawSurface(ctx, canvas);
    drawPaths(ctx, canvas, k);
    frames.push(canvas.toDataURL("image/png"));
    shown.push(k);
    size += frames[frames.length - 1].length;
    while (size > app.gifBudget && frames.length > 1) {
      // Over the budget: keep every second frame (updates 0, 2·every, 4·every, ...) and go on at that pace.
      frames = frames.filter((_, i) => i % 2 === 0);
      shown = shown.filter((_, i) => i % 2 === 0);
      size = frames.reduce((total, frame) => total + frame.length, 0);
      every *= 2;
      k = shown[shown.length - 1];
    }
    if (k >= n) break;
  }
  app.state.t = keep;
  draw();
  await busy(async () => {
    const response = await fetch("/api/gif", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ frames, delay_ms: 60 }),
    });
    if (!response.ok) throw await response.json();
    download(await response.blob(), "descentlab-playground.gif");
  });
}

// -- wiring ------------------------------------------------------------------------

function wire() {
  $("lang").addEventListener("change", async () => {
    await loadCatalogue($("lang").value);
    if (app.error) showError(app.error);
    renderSurfaceChoices();
    renderRuns();
    setPlaying(app.playing);
    draw();
    saveURL();
  });
  $("surface").addEventListener("change", () => {
    app.state.surface = $("surface").value;
    app.state.start = null;
    syncInputs();
    saveURL();
    refreshSurface();
  });
  $("apply-formula").addEventListener("click", () => {
    app.state.formula = $("formula").value;
    app.state.bounds = [[Number($("x0").value), Number($("x1").value)], [Number($("y0").value), Number($("y1").value)]];
    app.state.start = null;
    saveURL();
    refreshSurface();
  });
  $("regime").addEventListener("change", () => {
    app.state.regime = $("regime").value;
    syncInputs();
    changed();
  });
  // A typed number is held to the limits the page knows (the box shows where it was held), so that
  // the view never keeps a number the server would refuse while it draws the paths of another.
  const limits = {
    batch_size: () => [1, app.surface ? app.surface.samples : Infinity],
    seed: () => [0, app.schema.limits.seed],
    updates: () => [1, app.schema.limits.updates],
  };
  for (const [id, key] of [["batch-size", "batch_size"], ["seed", "seed"], ["updates", "updates"]]) {
    $(id).addEventListener("change", () => {
      const value = Math.round(Number($(id).value));
      const [low, high] = limits[key]();
      if (Number.isFinite(value)) app.state[key] = Math.max(low, Math.min(value, high));
      $(id).value = app.state[key];
      changed();
    });
  }
  $("speed").addEventListener("input", () => {
    app.state.speed = Number($("speed").value);
    saveURL();
  });
  $("add").addEventListener("click", () => {
    const name = $("add-choice").value;
    app.state.runs.push({ optimizer: name, hyperparameters: {}, mistakes: [] });
    renderRuns();
    changed();
  });
  $("contour").addEventListener("click", (event) => {
    const canvas = $("contour");
    const rect = canvas.getBoundingClientRect();
    const px = ((event.clientX - rect.left) * canvas.width) / rect.width;
    const py = ((event.clientY - rect.top) * canvas.height) / rect.height;
    // The update shown stays: the new paths are compared with the old at the same update.
    app.state.start = fromCanvas(canvas, px, py).map((v) => Number(v.toPrecision(4)));
    changed();
  });
  // From the keyboard: the arrow keys move the start by a 32nd of the plot (with Shift, a 128th).
  $("contour").addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (!(event.key in moves) || !app.paths) return;
    event.preventDefault();
    const canvas = $("contour");
    const [px, py] = toCanvas(canvas, ...(app.state.start || app.paths.start));
    const pixels = canvas.width / (event.shiftKey ? 128 : 32);
    const [dx, dy] = moves[event.key];
    app.state.start = fromCanvas(canvas, px + dx * pixels, py + dy * pixels).map((v) => Number(v.toPrecision(4)));
    changed();
  });
  $("play").addEventListener("click", () => setPlaying(!app.playing));
  $("step").addEventListener("click", () => stepTo(app.state.t + 1));
  $("step-back").addEventListener("click", () => stepTo(app.state.t - 1));
  $("reset").addEventListener("click", () => stepTo(0));
  $("png").addEventListener("click", exportPNG);
  $("gif").addEventListener("click", exportGIF);
}

async function main() {
  const params = new URLSearchParams(location.hash.slice(1));
  const lang = ["en", "zh"].includes(params.get("lang")) ? params.get("lang") : browserLanguage();
  const [schema] = await Promise.all([fetch("/api/schema").then((r) => r.json()), loadCatalogue(lang)]);
  app.schema = schema;
  app.state = stateFromURL();
  renderSurfaceChoices();
  renderAddChoices();
  renderRuns();
  syncInputs();
  wire();
  await refreshSurface();
}

main();
