// The search page: one POST /v1/search per column (thinking on, off, or both to compare).
// All server text goes into the page with textContent (never innerHTML): documents cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "o1emb-api-key";
let searchesDone = 0;   // exposed as <body data-searches>: tests wait for it to change

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value || sessionStorage.getItem(KEY_STORE);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

async function loadServerInfo() {
  try {
    const info = await (await fetch("/healthz")).json();
    const index = info.index ? `${info.index.count} documents` : "no index (embeddings only)";
    $("server").textContent = `model ${info.model} \u00b7 ${index}`;
    if (info.auth) {
      $("key-label").hidden = false;
      $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
    }
  } catch (err) {
    $("server").textContent = "server not reachable";
  }
}

async function search(query, think) {
  const body = { query: query, k: Number($("k").value), think: think };
  const n = $("n-thoughts").value;
  if (think !== false && n) body.n_thoughts = Number(n);
  const response = await fetch("/v1/search", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return data;
}

function renderColumn(data) {
  const column = $("column-template").content.firstElementChild.cloneNode(true);
  column.dataset.think = String(data.think);
  const thought = data.thought !== undefined ? data.thought : Boolean(data.think);
  column.querySelector(".column-title").textContent = data.think === "auto"
    ? (thought ? "Auto: unsure, so it thought" : "Auto: sure without thinking")
    : (data.think ? "With thinking" : "Without thinking");
  const thoughts = column.querySelector(".thoughts");
  if (data.thoughts.length === 0) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = thought ? "(the model wrote an empty thought)"
      : data.think === "auto" ? "(sure without thinking: the query is embedded as it is)"
        : "(thinking off: the query is embedded as it is)";
    thoughts.appendChild(li);
  }
  for (const thought of data.thoughts) {
    const li = document.createElement("li");
    li.className = "thought";
    li.textContent = thought || "(empty)";
    thoughts.appendChild(li);
  }
  const results = column.querySelector(".results");
  for (const hit of data.results) {
    const item = $("result-template").content.firstElementChild.cloneNode(true);
    item.querySelector(".score").textContent = hit.score.toFixed(4);
    item.querySelector(".title").textContent = hit.title || "";
    item.querySelector(".doc-id").textContent = hit.id;
    item.querySelector(".snippet").textContent = hit.snippet || "";
    results.appendChild(item);
  }
  column.querySelector(".took").textContent = `${data.results.length} documents in ${data.took_ms} ms`;
  return column;
}

async function onSubmit(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  if ($("api-key").value) sessionStorage.setItem(KEY_STORE, $("api-key").value);
  const single = $("think").checked ? ($("auto").checked ? "auto" : true) : false;
  const modes = $("compare").checked ? [true, false] : [single];
  $("search-button").disabled = true;
  setStatus("searching\u2026");
  try {
    const answers = await Promise.all(modes.map((think) => search(query, think)));
    $("columns").replaceChildren(...answers.map(renderColumn));
    setStatus("");
  } catch (err) {
    $("columns").replaceChildren();
    setStatus(err.message, true);
  } finally {
    $("search-button").disabled = false;
    document.body.dataset.searches = String(++searchesDone);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", onSubmit);
  loadServerInfo();
});
