/* wordspace explorer: vanilla JavaScript, no dependencies, nothing loaded from other servers.
 *
 * Every answer comes from the JSON API documented at /docs (neighbours, analogy, similar,
 * odd-one-out, contextual, vocabulary completion, projection, frequency map); the 2-D
 * coordinates are computed on the server over the full-dimensional vectors. The state of the
 * page lives in the URL (model, view and the view's inputs), so a link reproduces a view:
 *   /?model=glove-6b-50d&word=frog
 *   /?model=glove-6b-50d&view=analogy&a=man&b=king&c=woman
 */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const W = 640, H = 480, PAD = 40;
const K_DEFAULT = "10", MAP_DEFAULT = "2000";
/** The URL parameters each view keeps (besides model, view and k). */
const VIEW_PARAMS = {
  neighbours: ["word"], analogy: ["a", "b", "c", "method"], arithmetic: ["pos", "neg"], odd: ["words"],
  compare: ["word", "model2"], context: ["text", "cword"], map: ["n"],
};
const VIEWS = Object.keys(VIEW_PARAMS);
/** Colour ramp of the frequency map (viridis stops): most frequent first. */
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

/** Readable names of the stored evaluations' keys ("analogy/google/3cosadd", "similarity/ws353"). */
const SCORE_NAMES = {google: "Google analogies", "3cosadd": "3CosAdd", "3cosmul": "3CosMul", ws353: "WS353",
  simlex999: "SimLex-999"};

const $ = (selector) => document.querySelector(selector);
const enc = encodeURIComponent;

let models = [];        // the ready rows of GET /models
let state = {};         // model, view, k and the view's parameters (mirrors the URL)
let exportData = null;  // {name, columns, rows} of what is shown
let runId = 0;          // answers of a superseded run are dropped

// -- small DOM helpers ----------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function fmt(value, digits = 3) {
  return typeof value === "number" ? value.toFixed(digits) : "";
}

// -- the API --------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.missing = error.missing || [];
  }
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || {code: "http_error", message: response.statusText});
  }
  return data;
}

const modelPath = (name) => "/models/" + enc(name);

function project(model, words, fitOn) {
  return api(modelPath(model) + "/projection", {words: [...new Set(words)], ...(fitOn ? {fit_on: fitOn} : {})});
}

// -- state <-> URL ----------------------------------------------------------------------------
function readURL() {
  const query = new URLSearchParams(location.search);
  const view = VIEWS.includes(query.get("view")) ? query.get("view") : "neighbours";
  const next = {model: query.get("model"), view, k: query.get("k") || K_DEFAULT};
  for (const name of VIEW_PARAMS[view]) if (query.has(name)) next[name] = query.get(name);
  return next;
}

function writeURL(push) {
  const query = new URLSearchParams();
  query.set("model", state.model);
  if (state.view !== "neighbours") query.set("view", state.view);
  if (state.k && state.k !== K_DEFAULT) query.set("k", state.k);
  for (const name of VIEW_PARAMS[state.view]) if (state[name]) query.set(name, state[name]);
  const url = "?" + query.toString();
  if (url !== location.search) history[push ? "pushState" : "replaceState"](null, "", url);
}

/** Put the state's values into the forms. */
function fillForms() {
  $("#model").value = state.model;
  $("#k").value = state.k || K_DEFAULT;
  const values = {
    "#word": state.view === "neighbours" ? state.word : undefined,
    "#compare-word": state.view === "compare" ? state.word : undefined,
    "#analogy-a": state.a, "#analogy-b": state.b, "#analogy-c": state.c,
    "#positive": state.pos, "#negative": state.neg, "#odd-words": state.words,
    "#context-text": state.text, "#map-n": state.n,
  };
  for (const [selector, value] of Object.entries(values)) if (value !== undefined) $(selector).value = value;
  if (state.method) {
    const radio = document.querySelector(`input[name=method][value="${CSS.escape(state.method)}"]`);
    if (radio) radio.checked = true;
  }
  if (state.model2) $("#model2").value = state.model2;
}

function currentModel() {
  return models.find((m) => m.name === state.model);
}

function selectView(view) {
  state.view = view;
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.view === view));
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.dataset.view !== view;
}

function updateTabs() {
  const contextual = Boolean(currentModel() && currentModel().contextual);
  const tab = document.querySelector('.tabs button[data-view="context"]');
  tab.disabled = !contextual;
  tab.title = contextual ? "" : "only for contextual models (wordspace train contextual)";
  const compare = document.querySelector('.tabs button[data-view="compare"]');
  compare.disabled = models.length < 2;
  compare.title = models.length < 2 ? "needs a second served model" : "";
}

// -- status, results and export ---------------------------------------------------------------
function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function clearResults() {
  $("#results").replaceChildren();
  exportData = null;
  $("#export").hidden = true;
}

function setExport(name, columns, rows) {
  exportData = {name, columns, rows};
  $("#export").hidden = rows.length === 0;
}

function download(filename, type, text) {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const link = h("a", {href: url, download: filename});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 2000);
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportCSV() {
  if (!exportData) return;
  const lines = [exportData.columns, ...exportData.rows].map((row) => row.map(csvCell).join(","));
  download(exportData.name + ".csv", "text/csv", lines.join("\n") + "\n");
}

function exportJSON() {
  if (!exportData) return;
  const rows = exportData.rows.map((row) => Object.fromEntries(exportData.columns.map((c, i) => [c, row[i]])));
  const doc = {model: state.model, view: state.view, url: location.href, rows};
  download(exportData.name + ".json", "application/json", JSON.stringify(doc, null, 2) + "\n");
}

/** A result table; `rows` are {cells: [...], word, className}; a word cell re-centres on click. */
function table(caption, columns, rows) {
  const head = h("tr", {}, ...columns.map((c) => h("th", {scope: "col", class: c.num ? "num" : null, text: c.title})));
  const body = rows.map((row) => h("tr", {class: row.className || null, "data-word": row.word},
    ...row.cells.map((cell, i) => {
      const column = columns[i];
      if (column.word) {
        const button = h("button", {type: "button", text: cell, title: `neighbours of ${cell}`,
          onclick: () => recentre(cell)});
        const mark = row.mark ? h("span", {class: "mark", text: "✓", title: row.mark, "aria-label": row.mark}) : null;
        return h("td", {class: "word"}, button, mark);
      }
      return h("td", {class: column.num ? "num" : null, text: cell});
    })));
  return h("table", {}, h("caption", {text: caption}), h("thead", {}, head), h("tbody", {}, ...body));
}

/** "not in the vocabulary" with the API's close spellings as buttons that retry with them. */
function showMissing(error) {
  setStatus(`Not in the vocabulary of ${state.model}.`, true);
  const box = h("div", {class: "suggest-list"});
  for (const miss of error.missing) {
    const line = h("div", {class: "suggest"}, h("span", {text: `“${miss.word}” is not in ${state.model}.`}));
    if (miss.suggestions.length) {
      line.append(h("span", {text: "Did you mean"}));
      for (const suggestion of miss.suggestions) {
        line.append(h("button", {type: "button", class: "suggestion", text: suggestion,
          onclick: () => replaceWord(miss.word, suggestion)}));
      }
    } else {
      line.append(h("span", {text: "No close spelling found."}));
    }
    box.append(line);
  }
  $("#results").replaceChildren(box);
}

/** Retry the current view with `wrong` replaced by `right` wherever it was typed. */
function replaceWord(wrong, right) {
  for (const name of VIEW_PARAMS[state.view]) {
    const value = state[name];
    if (typeof value !== "string") continue;
    if (value === wrong) state[name] = right;
    else if (["pos", "neg", "words"].includes(name)) {
      state[name] = value.split(/\s+/).map((t) => (t === wrong ? right : t.startsWith(wrong + "*") ?
        right + t.slice(wrong.length) : t)).join(" ");
    }
  }
  fillForms();
  writeURL(true);
  run();
}

function recentre(word) {
  selectView("neighbours");
  state = {model: state.model, k: state.k, view: "neighbours", word};
  $("#word").value = word;
  writeURL(true);
  run();
}

function getK() {
  const input = $("#k");
  const k = Number(input.value);
  if (!Number.isInteger(k) || k < 1 || k > 100) {
    input.reportValidity();
    throw new ApiError(400, {code: "invalid_k", message: "k must be a whole number from 1 to 100"});
  }
  return k;
}

// -- the SVG map --------------------------------------------------------------------------------
const measureContext = document.createElement("canvas").getContext("2d");

function textWidth(text, bold) {
  measureContext.font = `${bold ? "700 " : ""}14px system-ui, sans-serif`;
  return measureContext.measureText(text).width;
}

function overlap(a, b) {
  return Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0)) *
         Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
}

/** Place each label at the first of 8 offsets that overlaps no placed label or point. */
function placeLabels(items) {
  const placed = items.map((p) => ({x0: p.x - 6, y0: p.y - 6, x1: p.x + 6, y1: p.y + 6}));
  const offsets = [[9, 5, "start"], [-9, 5, "end"], [0, -10, "middle"], [0, 20, "middle"],
                   [7, -7, "start"], [7, 17, "start"], [-7, -7, "end"], [-7, 17, "end"]];
  for (const item of items) {
    const width = textWidth(item.word, item.bold);
    let best = null;
    for (const [dx, dy, anchor] of offsets) {
      const x = item.x + dx, y = item.y + dy;
      const x0 = anchor === "start" ? x : anchor === "end" ? x - width : x - width / 2;
      const box = {x0, y0: y - 12, x1: x0 + width, y1: y + 3};
      let cost = placed.reduce((sum, other) => sum + overlap(box, other), 0);
      cost += (box.x0 < 0 ? -box.x0 : 0) + (box.x1 > W ? box.x1 - W : 0) + (box.y0 < 0 ? -box.y0 : 0) +
              (box.y1 > H ? box.y1 - H : 0);
      if (best === null || cost < best.cost) best = {cost, x, y, anchor, box};
      if (cost === 0) break;
    }
    placed.push(best.box);
    item.label = best;
  }
}

/**
 * Draw `points` ([{word, role, score, note}]) at the server's coordinates `xy` (word -> {x, y}),
 * with arrows ([from, to]) and dashed sides. Click or Enter on a point re-centres on it.
 */
function drawMap(points, xy, {arrows = [], sides = [], caption = "", scoreName = "cosine"} = {}) {
  const map = $("#map");
  map.removeAttribute("hidden");  // an SVG element has no .hidden property
  $("#freq-map").hidden = true;
  const shown = points.filter((p) => xy[p.word]);
  const xs = shown.map((p) => xy[p.word].x), ys = shown.map((p) => xy[p.word].y);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const scale = Math.min((W - 2 * PAD) / ((maxX - minX) || 1), (H - 2 * PAD) / ((maxY - minY) || 1));
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  const X = (x) => W / 2 + (x - cx) * scale, Y = (y) => H / 2 - (y - cy) * scale;

  const defs = s("defs", {}, s("marker", {id: "arrowhead", viewBox: "0 0 10 10", refX: "9", refY: "5",
    markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse"},
  s("path", {d: "M0,0 L10,5 L0,10 z", class: "arrowhead"})));
  const layer = s("g", {class: "lines"});
  const line = (from, to, cls) => {
    if (!xy[from] || !xy[to] || from === to) return;
    const x1 = X(xy[from].x), y1 = Y(xy[from].y), x2 = X(xy[to].x), y2 = Y(xy[to].y);
    const length = Math.hypot(x2 - x1, y2 - y1) || 1, cut = cls === "arrow" ? 8 : 0;
    layer.append(s("line", {class: cls, x1, y1, x2: x2 - (x2 - x1) * cut / length,
      y2: y2 - (y2 - y1) * cut / length, "data-from": from, "data-to": to,
      ...(cls === "arrow" ? {"marker-end": "url(#arrowhead)"} : {})}));
  };
  for (const [from, to] of sides) line(from, to, "side");
  for (const [from, to] of arrows) line(from, to, "arrow");

  const order = {other: 0, neighbour: 1, input: 2, odd: 2, answer: 3, query: 4};
  const items = shown.map((p) => ({...p, x: X(xy[p.word].x), y: Y(xy[p.word].y),
    bold: ["query", "answer", "input"].includes(p.role)}));
  items.sort((a, b) => (order[b.role] || 0) - (order[a.role] || 0));  // important labels placed first
  placeLabels(items);
  items.reverse();  // ... and drawn last (on top)
  const dots = s("g", {class: "points"});
  for (const item of items) {
    const detail = item.note || (typeof item.score === "number" ? `${scoreName} ${fmt(item.score)}` : "");
    const group = s("g", {class: `point ${item.role}`, tabindex: "0", role: "button", "data-word": item.word,
      "aria-label": `${item.word}${detail ? ", " + detail : ""}; show its neighbours`},
    s("circle", {cx: item.x, cy: item.y, r: item.role === "query" || item.role === "answer" ? 7 : 5}),
    s("text", {x: item.label.x, y: item.label.y, "text-anchor": item.label.anchor}));
    group.lastChild.textContent = item.word;
    group.addEventListener("click", () => recentre(item.word));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        recentre(item.word);
      }
    });
    group.addEventListener("pointerenter", () => showTooltip(group, item.word, detail));
    group.addEventListener("focus", () => showTooltip(group, item.word, detail));
    group.addEventListener("pointerleave", hideTooltip);
    group.addEventListener("blur", hideTooltip);
    dots.append(group);
  }
  map.replaceChildren(defs, layer, dots);
  $("#map-caption").textContent = caption;
}

function emptyMap(text) {
  const map = $("#map");
  map.removeAttribute("hidden");  // an SVG element has no .hidden property
  $("#freq-map").hidden = true;
  map.replaceChildren(s("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"}));
  map.lastChild.textContent = text;
  $("#map-caption").textContent = "";
}

function showTooltip(target, word, detail) {
  const tip = $("#tooltip");
  tip.textContent = detail ? `${word} · ${detail}` : word;
  tip.hidden = false;
  const anchor = target.querySelector("circle") || target;  // the point, not its label
  const box = anchor.getBoundingClientRect(), frame = $(".figure").getBoundingClientRect();
  tip.style.left = `${Math.max(0, Math.min(box.left - frame.left + box.width / 2 - tip.offsetWidth / 2,
    frame.width - tip.offsetWidth))}px`;
  tip.style.top = `${Math.max(0, box.top - frame.top - tip.offsetHeight - 6)}px`;
}

function hideTooltip() {
  $("#tooltip").hidden = true;
}

function byWord(points) {
  return Object.fromEntries(points.map((p) => [p.word, {x: p.x, y: p.y}]));
}

function varianceText(projection) {
  const [a, b] = projection.explained_variance;
  return `explained variance ${(100 * a).toFixed(1)}% + ${(100 * b).toFixed(1)}%`;
}

// -- the views -----------------------------------------------------------------------------------
async function showNeighbours(id) {
  const word = (state.word || "").trim();
  if (!word) {
    setStatus("Type a word to see its nearest neighbours and their map.");
    emptyMap("neighbours and their map appear here");
    return;
  }
  const k = getK();
  setStatus(`Neighbours of “${word}”…`);
  const data = await api(`${modelPath(state.model)}/neighbors?word=${enc(word)}&k=${k}`);
  const rows = data.neighbors;
  const projection = await project(state.model, [word, ...rows.map((r) => r.word)]);
  if (id !== runId) return;
  const xy = byWord(projection.points);
  $("#results").replaceChildren(table(`Nearest neighbours of “${word}”`,
    [{title: "#", num: true}, {title: "word", word: true}, {title: "cosine", num: true}],
    rows.map((r, i) => ({word: r.word, cells: [i + 1, r.word, fmt(r.score)]}))));
  drawMap([{word, role: "query", note: "the query"}, ...rows.map((r) => ({word: r.word, role: "neighbour", score: r.score}))],
    xy, {caption: `“${word}” and its ${rows.length} nearest neighbours in ${state.model}: TruncatedSVD of ` +
      `the ${projection.fit_words} unit vectors (full ${currentModel().dim} dimensions), ${varianceText(projection)}. ` +
      "Click a word to re-centre."});
  setExport(`neighbours-${word}`, ["rank", "word", "cosine", "x", "y"],
    [[0, word, 1, xy[word].x, xy[word].y], ...rows.map((r, i) => [i + 1, r.word, r.score, xy[r.word].x, xy[r.word].y])]);
  setStatus(`${rows.length} nearest neighbours of “${word}” in ${state.model}.`);
}

async function showAnalogy(id) {
  const [a, b, c] = [state.a, state.b, state.c].map((w) => (w || "").trim());
  if (!a || !b || !c) {
    setStatus("Fill in a, b and c: a is to b as c is to ?");
    emptyMap("the analogy's parallelogram appears here");
    return;
  }
  const k = getK();
  const method = state.method === "3cosmul" ? "3cosmul" : "3cosadd";
  setStatus(`${a} : ${b} :: ${c} : ?…`);
  const data = await api(`${modelPath(state.model)}/analogy`, {a, b, c, k, method});
  const answers = data.answers;
  if (!answers.length) {
    setStatus("No answer: the vocabulary has no word besides a, b and c.", true);
    return;
  }
  const best = answers[0].word;
  const projection = await project(state.model, [a, b, c, ...answers.map((x) => x.word)]);
  if (id !== runId) return;
  const xy = byWord(projection.points);
  const scoreName = method === "3cosadd" ? "cosine" : "3CosMul";
  $("#results").replaceChildren(
    h("p", {class: "answer-line"}, h("span", {text: `${a} is to ${b} as ${c} is to `}), h("b", {class: "answer", text: best})),
    table(`Answers (${method === "3cosadd" ? "3CosAdd" : "3CosMul"})`,
      [{title: "#", num: true}, {title: "word", word: true}, {title: scoreName, num: true}],
      answers.map((r, i) => ({word: r.word, className: i === 0 ? "best" : null, cells: [i + 1, r.word, fmt(r.score)]}))));
  const inputs = [[a, "a"], [b, "b"], [c, "c"]];
  drawMap([...inputs.map(([w, role]) => ({word: w, role: "input", note: role})),
    ...answers.map((r, i) => ({word: r.word, role: i === 0 ? "answer" : "other", score: r.score}))], xy,
  {arrows: [[a, b], [c, best]], sides: [[a, c], [b, best]], scoreName,
    caption: `${a} → ${b} and ${c} → ${best}: the analogy's parallelogram in ${state.model} (${varianceText(projection)}).`});
  setExport(`analogy-${a}-${b}-${c}`, ["rank", "word", scoreName, "x", "y"],
    answers.map((r, i) => [i + 1, r.word, r.score, xy[r.word].x, xy[r.word].y]));
  setStatus(`${answers.length} answers (${method === "3cosadd" ? "3CosAdd" : "3CosMul"}).`);
}

/** "king woman*0.5" -> ["king", {word: "woman", weight: 0.5}] */
function parseTerms(text) {
  return (text || "").split(/[\s,]+/).filter(Boolean).map((token) => {
    const match = /^(.+)\*(-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i.exec(token);
    return match ? {word: match[1], weight: Number(match[2])} : token;
  });
}

const termWord = (term) => (typeof term === "string" ? term : term.word);

async function showArithmetic(id) {
  const positive = parseTerms(state.pos), negative = parseTerms(state.neg);
  if (!positive.length && !negative.length) {
    setStatus("Give positive and/or negative terms, e.g. king woman − man.");
    emptyMap("the terms and the result appear here");
    return;
  }
  const k = getK();
  setStatus("Computing…");
  const data = await api(`${modelPath(state.model)}/similar`, {positive, negative, k});
  const rows = data.results;
  const termWords = [...positive, ...negative].map(termWord);
  const projection = await project(state.model, [...termWords, ...rows.map((r) => r.word)]);
  if (id !== runId) return;
  const xy = byWord(projection.points);
  const label = (term, sign) => `${sign}${termWord(term)}${typeof term === "string" ? "" : "×" + term.weight}`;
  const formula = [...positive.map((t) => label(t, "+")), ...negative.map((t) => label(t, "−"))].join(" ");
  $("#results").replaceChildren(table(`Nearest to ${formula}`,
    [{title: "#", num: true}, {title: "word", word: true}, {title: "cosine", num: true}],
    rows.map((r, i) => ({word: r.word, className: i === 0 ? "best" : null, cells: [i + 1, r.word, fmt(r.score)]}))));
  drawMap([...positive.map((t) => ({word: termWord(t), role: "input", note: "positive term"})),
    ...negative.map((t) => ({word: termWord(t), role: "odd", note: "negative term"})),
    ...rows.map((r, i) => ({word: r.word, role: i === 0 ? "answer" : "neighbour", score: r.score}))], xy,
  {caption: `${formula} in ${state.model} (${varianceText(projection)}).`});
  setExport("arithmetic", ["rank", "word", "cosine", "x", "y"],
    rows.map((r, i) => [i + 1, r.word, r.score, xy[r.word].x, xy[r.word].y]));
  setStatus(`${formula} ≈ ${rows.length ? rows[0].word : "(nothing)"}`);
}

async function showOdd(id) {
  const words = (state.words || "").split(/[\s,]+/).filter(Boolean);
  if (words.length < 2) {
    setStatus("Give at least two words.");
    emptyMap("the words appear here");
    return;
  }
  setStatus("Looking for the odd one out…");
  const data = await api(`${modelPath(state.model)}/odd-one-out`, {words});
  const projection = await project(state.model, words);
  if (id !== runId) return;
  const xy = byWord(projection.points);
  $("#results").replaceChildren(
    h("p", {}, h("span", {text: "The odd one out: "}), h("b", {class: "answer", text: data.odd_one_out})),
    table("Cosine to the mean of all the words", [{title: "word", word: true}, {title: "cosine to mean", num: true}],
      data.scores.map((r) => ({word: r.word, className: r.word === data.odd_one_out ? "odd" : null,
        cells: [r.word, fmt(r.score)]}))));
  drawMap(data.scores.map((r) => ({word: r.word, role: r.word === data.odd_one_out ? "odd" : "neighbour",
    score: r.score})), xy, {scoreName: "cosine to mean",
    caption: `The words in ${state.model}; red: the odd one out (${varianceText(projection)}).`});
  setExport("odd-one-out", ["word", "cosine_to_mean", "odd", "x", "y"],
    data.scores.map((r) => [r.word, r.score, r.word === data.odd_one_out, xy[r.word].x, xy[r.word].y]));
  setStatus(`The odd one out: ${data.odd_one_out}`);
}

/** Two neighbour lists side by side with the words in both marked. */
function sideBySide(left, right) {
  const inRight = new Set(right.rows.map((r) => r.word)), inLeft = new Set(left.rows.map((r) => r.word));
  const column = (side, other) => {
    if (side.error) {
      const box = h("div", {class: "column-error"}, h("p", {class: "error", text: side.error.message}));
      for (const miss of side.error.missing || []) {
        if (miss.suggestions.length) box.append(h("p", {text: `Close spellings: ${miss.suggestions.join(", ")}`}));
      }
      return h("div", {}, h("h3", {text: side.title}), box);
    }
    return table(side.title, [{title: "#", num: true}, {title: "word", word: true}, {title: side.scoreName || "cosine", num: true}],
      side.rows.map((r, i) => ({word: r.word, className: other.has(r.word) ? "shared" : null,
        mark: other.has(r.word) ? "in both lists" : null, cells: [i + 1, r.word, fmt(r.score)]})));
  };
  const shared = left.rows.filter((r) => inRight.has(r.word)).length;
  return {shared, node: h("div", {},
    h("p", {class: "overlap", text: left.error || right.error ? "" :
      `${shared} of ${left.rows.length} words in both lists (marked ✓).`}),
    h("div", {class: "columns"}, column(left, inRight), column(right, inLeft)))};
}

async function settle(promise) {
  try {
    return {rows: await promise};
  } catch (error) {
    if (error instanceof ApiError && error.status < 500) return {rows: [], error};
    throw error;
  }
}

async function showCompare(id) {
  const word = (state.word || "").trim();
  const other = state.model2 || $("#model2").value;
  if (!word || !other) {
    setStatus("Type a word and pick a second model.");
    emptyMap("the first model's neighbours appear here");
    return;
  }
  const k = getK();
  setStatus(`Neighbours of “${word}” in ${state.model} and ${other}…`);
  const fetchRows = (name) => api(`${modelPath(name)}/neighbors?word=${enc(word)}&k=${k}`).then((d) => d.neighbors);
  const [left, right] = await Promise.all([settle(fetchRows(state.model)), settle(fetchRows(other))]);
  left.title = state.model;
  right.title = other;
  const {node} = sideBySide(left, right);
  let projection = null;
  if (!left.error) projection = await project(state.model, [word, ...left.rows.map((r) => r.word)]);
  if (id !== runId) return;
  $("#results").replaceChildren(node);
  const inRight = new Set(right.rows.map((r) => r.word));
  if (projection) {
    drawMap([{word, role: "query", note: "the query"}, ...left.rows.map((r) => ({word: r.word,
      role: inRight.has(r.word) ? "answer" : "neighbour", score: r.score}))], byWord(projection.points),
    {caption: `“${word}” in ${state.model}; green: also among its ${k} nearest in ${other}.`});
  } else {
    emptyMap(`“${word}” is not in ${state.model}`);
  }
  const rows = [...left.rows.map((r, i) => [state.model, i + 1, r.word, r.score, inRight.has(r.word)]),
    ...right.rows.map((r, i) => [other, i + 1, r.word, r.score, left.rows.some((x) => x.word === r.word)])];
  setExport(`compare-${word}`, ["model", "rank", "word", "cosine", "in_both"], rows);
  setStatus(left.error || right.error ? `“${word}” is missing from a model.` :
    `“${word}”: ${state.model} next to ${other}.`, Boolean(left.error || right.error));
}

async function showContext(id) {
  const text = (state.text || "").trim();
  const tokensBox = $("#context-tokens");
  if (!currentModel() || !currentModel().contextual) {
    setStatus(`${state.model} has no contextual encoder; pick a contextual model.`, true);
    return;
  }
  if (!text) {
    tokensBox.replaceChildren();
    setStatus("Type a sentence, then pick one of its words.");
    emptyMap("the word's neighbours in context appear here");
    return;
  }
  const path = `${modelPath(state.model)}/contextual`;
  const sentence = await api(path, {text});
  if (id !== runId) return;
  tokensBox.replaceChildren(...[...new Set(sentence.tokens.map((t) => t.token))].map((token) =>
    h("button", {type: "button", text: token, "aria-pressed": String(token === state.cword),
      onclick: () => { state.cword = token; writeURL(true); run(); }})));
  if (!state.cword) {
    setStatus("Pick a word of the sentence.");
    emptyMap("the word's neighbours in context appear here");
    return;
  }
  const k = getK();
  const word = state.cword;
  setStatus(`“${word}” in this sentence…`);
  const [inContext, staticRows] = await Promise.all([
    settle(api(path, {text, word, k}).then((d) => d.neighbors)),
    settle(api(`${modelPath(state.model)}/neighbors?word=${enc(word)}&k=${k}`).then((d) => d.neighbors))]);
  if (inContext.error) throw inContext.error;
  inContext.title = `“${word}” in this sentence`;
  staticRows.title = `“${word}” in any sentence (static)`;
  const {node} = sideBySide(inContext, staticRows);
  const words = [...new Set([...inContext.rows, ...staticRows.rows].map((r) => r.word))];
  const known = staticRows.error ? words : [word, ...words];
  const projection = await project(state.model, known);
  if (id !== runId) return;
  $("#results").replaceChildren(node);
  const inSentence = new Set(inContext.rows.map((r) => r.word));
  const score = Object.fromEntries([...staticRows.rows, ...inContext.rows].map((r) => [r.word, r.score]));
  drawMap([...(staticRows.error ? [] : [{word, role: "query", note: "static vector"}]),
    ...words.map((w) => ({word: w, role: inSentence.has(w) ? "answer" : "other", score: score[w]}))],
  byWord(projection.points), {caption: `Green: nearest to “${word}” in this sentence; grey: nearest to its ` +
    `static vector only (${varianceText(projection)}).`});
  setExport(`context-${word}`, ["list", "rank", "word", "cosine"],
    [...inContext.rows.map((r, i) => ["in_context", i + 1, r.word, r.score]),
      ...staticRows.rows.map((r, i) => ["static", i + 1, r.word, r.score])]);
  setStatus(`Neighbours of “${word}” in this sentence next to its static ones.`);
}

// -- the frequency map (canvas: 10,000+ points) ---------------------------------------------------
function rampColour(t) {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1), i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i, c = RAMP[i].map((v, j) => Math.round(v + (RAMP[i + 1][j] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

async function showMap(id) {
  const input = $("#map-n");
  const n = Number(state.n || MAP_DEFAULT);
  if (!Number.isInteger(n) || n < 2 || n > 50000) {
    input.reportValidity();
    throw new ApiError(400, {code: "invalid_n", message: "N must be a whole number from 2 to 50,000"});
  }
  setStatus(`Mapping the ${n.toLocaleString("en")} most frequent words…`);
  performance.mark("wordspace:map-request");
  const data = await api(`${modelPath(state.model)}/map?n=${n}`);
  if (id !== runId) return;
  drawFrequencyMap(data);
  performance.mark("wordspace:map-drawn");
  const shown = Math.min(20, data.n);
  $("#results").replaceChildren(table(`The ${shown} most frequent words`,
    [{title: "rank", num: true}, {title: "word", word: true}, {title: "count", num: true}],
    data.words.slice(0, shown).map((w, i) => ({word: w, cells: [i + 1, w, data.counts ? data.counts[i] : "–"]}))));
  setExport(`map-${data.n}`, ["rank", "word", "count", "x", "y"],
    data.words.map((w, i) => [i + 1, w, data.counts ? data.counts[i] : null, data.x[i], data.y[i]]));
  $("#map-caption").textContent = `The ${data.n.toLocaleString("en")} most frequent words of ${state.model}, ` +
    `TruncatedSVD fit on them (${varianceText(data)}). Colour: frequency rank, dark = frequent. Hover for the ` +
    "word, click for its neighbours.";
  setStatus(`${data.n.toLocaleString("en")} words drawn.`);
}

function drawFrequencyMap(data) {
  const canvas = $("#freq-map");
  $("#map").setAttribute("hidden", "");
  canvas.hidden = false;
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.getBoundingClientRect().width || W, height = width * H / W;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const n = data.n, pad = 24;
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, data.x[i]); maxX = Math.max(maxX, data.x[i]);
    minY = Math.min(minY, data.y[i]); maxY = Math.max(maxY, data.y[i]);
  }
  const scale = Math.min((width - 2 * pad) / ((maxX - minX) || 1), (height - 2 * pad) / ((maxY - minY) || 1));
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  const px = new Float32Array(n), py = new Float32Array(n);
  const logN = Math.log(n + 1);
  const radius = n > 20000 ? 1.2 : n > 5000 ? 1.6 : 2.4;
  for (let i = n - 1; i >= 0; i--) {  // rare words first, frequent ones on top
    px[i] = width / 2 + (data.x[i] - cx) * scale;
    py[i] = height / 2 - (data.y[i] - cy) * scale;
    ctx.fillStyle = rampColour(Math.log(i + 1) / logN);
    ctx.fillRect(px[i] - radius, py[i] - radius, 2 * radius, 2 * radius);
  }
  ctx.font = "12px system-ui, sans-serif";
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(255,255,255,0.9)";
  ctx.fillStyle = "#111";
  const labelled = [];
  for (let i = 0; i < Math.min(40, n); i++) {  // the most frequent words get labels where there is room
    const box = {x0: px[i] + 4, y0: py[i] - 14, x1: px[i] + 4 + ctx.measureText(data.words[i]).width, y1: py[i]};
    if (labelled.some((other) => overlap(box, other) > 0)) continue;
    labelled.push(box);
    ctx.strokeText(data.words[i], box.x0, py[i] - 3);
    ctx.fillText(data.words[i], box.x0, py[i] - 3);
  }
  // A grid of 10-pixel cells for hover and click lookups.
  const cell = 10, grid = new Map();
  for (let i = 0; i < n; i++) {
    const key = `${Math.floor(px[i] / cell)},${Math.floor(py[i] / cell)}`;
    if (!grid.has(key)) grid.set(key, []);
    grid.get(key).push(i);
  }
  canvas.dataset.points = String(n);
  canvas.wordspaceMap = {data, px, py, grid, cell};
}

function nearestOnCanvas(event) {
  const canvas = $("#freq-map"), map = canvas.wordspaceMap;
  if (!map) return -1;
  const rect = canvas.getBoundingClientRect();
  const x = event.clientX - rect.left, y = event.clientY - rect.top;
  const gx = Math.floor(x / map.cell), gy = Math.floor(y / map.cell);
  let best = -1, bestDistance = 64;
  for (let dx = -1; dx <= 1; dx++) {
    for (let dy = -1; dy <= 1; dy++) {
      for (const i of map.grid.get(`${gx + dx},${gy + dy}`) || []) {
        const distance = (map.px[i] - x) ** 2 + (map.py[i] - y) ** 2;
        if (distance < bestDistance || (distance === bestDistance && i < best)) {
          best = i;
          bestDistance = distance;
        }
      }
    }
  }
  return best;
}

function canvasHover(event) {
  const i = nearestOnCanvas(event), tip = $("#tooltip");
  if (i < 0) {
    tip.hidden = true;
    return;
  }
  const {data, px, py} = $("#freq-map").wordspaceMap;
  tip.textContent = `${data.words[i]} · rank ${i + 1}${data.counts ? ` · count ${data.counts[i].toLocaleString("en")}` : ""}`;
  tip.hidden = false;
  tip.style.left = `${Math.max(0, px[i] - tip.offsetWidth / 2)}px`;
  tip.style.top = `${Math.max(0, py[i] - tip.offsetHeight - 8)}px`;
}

// -- completion over the whole vocabulary -------------------------------------------------------
function attachCompletion(input, submitOnPick) {
  const wrapper = h("div", {class: "combo"});
  input.replaceWith(wrapper);
  const list = h("ul", {id: `${input.id}-completions`, class: "completions", role: "listbox", hidden: true,
    "aria-label": `completions for ${input.id}`});
  wrapper.append(input, list);
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", list.id);
  let sequence = 0, timer = 0, active = -1;

  const options = () => [...list.querySelectorAll("[role=option]")];
  const close = () => {
    list.hidden = true;
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  };
  const highlight = (index) => {
    const all = options();
    active = all.length ? (index + all.length) % all.length : -1;
    all.forEach((option, i) => option.setAttribute("aria-selected", String(i === active)));
    if (active >= 0) {
      input.setAttribute("aria-activedescendant", all[active].id);
      all[active].scrollIntoView({block: "nearest"});
    }
  };
  const pick = (word) => {
    input.value = word;
    close();
    if (submitOnPick) input.form.requestSubmit();
  };
  const complete = async () => {
    const prefix = input.value.trim();
    const mine = ++sequence;
    if (!prefix || !state.model) {
      close();
      return;
    }
    let data;
    try {
      data = await api(`${modelPath(state.model)}/vocabulary?prefix=${enc(prefix)}&limit=8`);
    } catch (error) {
      close();
      return;
    }
    if (mine !== sequence || document.activeElement !== input) return;
    if (!data.words.length) {
      close();
      return;
    }
    list.replaceChildren(...data.words.map((word, i) => h("li", {id: `${list.id}-${i}`, role: "option",
      "aria-selected": "false", "data-word": word, text: word,
      onmousedown: (event) => { event.preventDefault(); pick(word); }})));
    if (data.total > data.words.length) {
      list.append(h("li", {class: "total", role: "presentation",
        text: `${data.total.toLocaleString("en")} words start with “${prefix}”`}));
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(complete, 60);
  });
  input.addEventListener("keydown", (event) => {
    if (list.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      highlight(active + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      pick(options()[active].dataset.word);
    } else if (event.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("focus", () => { sequence++; });
}

// -- running a view -----------------------------------------------------------------------------
const RENDER = {neighbours: showNeighbours, analogy: showAnalogy, arithmetic: showArithmetic, odd: showOdd,
  compare: showCompare, context: showContext, map: showMap};

async function run() {
  const id = ++runId;
  document.body.dataset.state = "busy";
  clearResults();
  hideTooltip();
  setStatus("");
  try {
    if (!state.model) {
      setStatus("No model is served yet: train or import one (wordspace import glove-6b-50d), then reload.", true);
      return;
    }
    await RENDER[state.view](id);
  } catch (error) {
    if (id !== runId) return;
    if (error instanceof ApiError && error.code === "word_not_found") showMissing(error);
    else if (error instanceof ApiError) setStatus(error.message, true);
    else setStatus(`Something went wrong: ${error.message}`, true);
    emptyMap("");
  } finally {
    if (id === runId) {
      document.body.dataset.state = "ready";
      performance.mark("wordspace:ready");
    }
  }
}

async function describeModel() {
  const info = $("#model-info");
  const model = currentModel();
  if (!model) {
    info.textContent = "";
    return;
  }
  const parts = [`${model.method || "?"} · ${model.dim} dimensions · ${model.vocab_size.toLocaleString("en")} words` +
    ` · ${model.index ? model.index.kind : "?"} index${model.contextual ? " · contextual encoder" : ""}`];
  info.textContent = parts[0];
  try {
    const detail = await api(modelPath(model.name));
    const scores = [];
    for (const [key, value] of Object.entries(detail.evaluation || {})) {
      const name = key.split("/").slice(1).map((part) => SCORE_NAMES[part] || part).join(" ") || key;
      if (value && typeof value.accuracy === "number") scores.push(`${name} ${(100 * value.accuracy).toFixed(1)}%`);
      else if (value && typeof value.spearman === "number") scores.push(`${name} ρ ${value.spearman.toFixed(3)}`);
    }
    if (model.name === state.model) {
      info.textContent = parts[0] + (scores.length ? ` · stored scores: ${scores.join(", ")}` : " · no stored scores");
    }
  } catch (error) {
    // the summary line stays
  }
}

function submitView(view, values) {
  selectView(view);
  state = {model: state.model, k: state.k, view, ...values};
  writeURL(true);
  run();
}

function bindForms() {
  const form = (id, view, values) => $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    submitView(view, values());
  });
  form("#form-neighbours", "neighbours", () => ({word: $("#word").value.trim()}));
  form("#form-analogy", "analogy", () => ({a: $("#analogy-a").value.trim(), b: $("#analogy-b").value.trim(),
    c: $("#analogy-c").value.trim(), method: document.querySelector("input[name=method]:checked").value}));
  form("#form-arithmetic", "arithmetic", () => ({pos: $("#positive").value.trim(), neg: $("#negative").value.trim()}));
  form("#form-odd", "odd", () => ({words: $("#odd-words").value.trim()}));
  form("#form-compare", "compare", () => ({word: $("#compare-word").value.trim(), model2: $("#model2").value}));
  form("#form-context", "context", () => ({text: $("#context-text").value.trim()}));
  form("#form-map", "map", () => ({n: $("#map-n").value.trim()}));

  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      if (tab.disabled || tab.dataset.view === state.view) return;
      const view = tab.dataset.view;
      // Carry the word over between the one-word views.
      const word = state.word || (state.view === "context" ? state.cword : undefined);
      const values = {};
      for (const name of VIEW_PARAMS[view]) {
        const field = {word: view === "compare" ? "#compare-word" : "#word", a: "#analogy-a", b: "#analogy-b",
          c: "#analogy-c", pos: "#positive", neg: "#negative", words: "#odd-words", model2: "#model2",
          text: "#context-text", n: "#map-n"}[name];
        if (name === "method") values.method = document.querySelector("input[name=method]:checked").value;
        else if (name === "word" && word) values.word = word;
        else if (field && $(field).value.trim()) values[name] = $(field).value.trim();
      }
      if (values.word) {
        $("#word").value = values.word;
        $("#compare-word").value = values.word;
      }
      submitView(view, values);
    });
  }
  $("#model").addEventListener("change", () => {
    state.model = $("#model").value;
    if (state.view === "context" && !currentModel().contextual) selectView("neighbours");
    if (state.view === "compare" && state.model2 === state.model) state.model2 = otherModel();
    fillForms();
    updateTabs();
    describeModel();
    writeURL(true);
    run();
  });
  $("#k").addEventListener("change", () => {
    state.k = $("#k").value;
    writeURL(false);
    run();
  });
  $("#export-csv").addEventListener("click", exportCSV);
  $("#export-json").addEventListener("click", exportJSON);
  const canvas = $("#freq-map");
  canvas.addEventListener("pointermove", canvasHover);
  canvas.addEventListener("pointerleave", hideTooltip);
  canvas.addEventListener("click", (event) => {
    const i = nearestOnCanvas(event);
    if (i >= 0) recentre(canvas.wordspaceMap.data.words[i]);
  });
  window.addEventListener("popstate", () => {
    state = readURL();
    if (!currentModel() && models.length) state.model = models[0].name;
    selectView(state.view);
    fillForms();
    updateTabs();
    describeModel();
    run();
  });
  attachCompletion($("#word"), true);
  attachCompletion($("#compare-word"), false);
  for (const id of ["#analogy-a", "#analogy-b", "#analogy-c"]) attachCompletion($(id), false);
}

function otherModel() {
  const other = models.find((m) => m.name !== state.model);
  return other ? other.name : state.model;
}

async function init() {
  bindForms();
  let rows = [];
  try {
    rows = await api("/models");
  } catch (error) {
    setStatus(`Could not list the models: ${error.message}`, true);
  }
  models = rows.filter((m) => m.status === "ready");
  const label = (m) => m.status === "ready" ?
    `${m.name} (${m.method || "?"}, ${m.dim}d, ${m.vocab_size.toLocaleString("en")} words)` : `${m.name} (${m.status})`;
  for (const select of [$("#model"), $("#model2")]) {
    select.replaceChildren(...rows.map((m) => h("option", {value: m.name, text: label(m), disabled: m.status !== "ready",
      title: m.error || null})));
  }
  state = readURL();
  let notice = "";
  if (state.model && !currentModel()) notice = `No ready model named “${state.model}”. `;
  if (!currentModel()) state.model = models.length ? models[0].name : null;
  if (state.view === "context" && !(currentModel() && currentModel().contextual)) state.view = "neighbours";
  if (state.view === "compare" && !state.model2) state.model2 = otherModel();
  if (!state.model2) $("#model2").value = otherModel();
  selectView(state.view);
  if (state.model) fillForms();
  updateTabs();
  if (state.model) writeURL(false);
  describeModel();
  await run();
  if (notice) setStatus(notice + $("#status").textContent, true);
}

document.addEventListener("DOMContentLoaded", init);
