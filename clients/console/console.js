// graphgate console: sign up or in, manage graphs, run queries, upload files.
//
// Security: every value that came from the API or the user is written with
// textContent (never innerHTML); the page runs under a CSP without inline
// script or style. The access token lives in memory and in sessionStorage
// (this tab only, gone when it closes), is refreshed a minute before it
// expires, and is revoked on sign-out.

const SESSION_KEY = "graphgate.session";
const REFRESH_MARGIN_MS = 60_000;
const MIN_REFRESH_DELAY_MS = 5_000;

const state = {
  token: null,
  expiresAt: 0,
  refreshTimer: null,
  user: null,
  graph: null,
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "UNKNOWN";
    this.details = (body && body.details) || [];
  }

  describe() {
    const problems = [];
    for (const detail of this.details) {
      for (const violation of detail.fieldViolations || []) {
        problems.push(`${violation.field}: ${violation.description}`);
      }
    }
    return problems.length ? `${this.message} (${problems.join("; ")})` : this.message;
  }
}

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`.trim();
}

function showError(error) {
  setStatus(error instanceof ApiError ? error.describe() : String(error.message || error), "error");
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch (error) {
    data = { message: `unexpected answer (HTTP ${response.status})` };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// --- session ---------------------------------------------------------------

function setSession(session) {
  state.token = session.accessToken;
  state.expiresAt = Date.parse(session.expiresAt);
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: state.token, expiresAt: state.expiresAt }));
  scheduleRefresh();
}

function clearSession() {
  state.token = null;
  state.expiresAt = 0;
  state.user = null;
  state.graph = null;
  clearTimeout(state.refreshTimer);
  sessionStorage.removeItem(SESSION_KEY);
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  const delay = Math.max(MIN_REFRESH_DELAY_MS, state.expiresAt - Date.now() - REFRESH_MARGIN_MS);
  state.refreshTimer = setTimeout(refresh, delay);
}

async function refresh() {
  try {
    const reply = await api("POST", "/v1/auth/refresh", {});
    setSession(reply.session);
  } catch (error) {
    clearSession();
    showSignedOut();
    setStatus("Your session ended; please sign in again.", "error");
  }
}

function restoreSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (saved && saved.token && saved.expiresAt > Date.now() + MIN_REFRESH_DELAY_MS) {
      state.token = saved.token;
      state.expiresAt = saved.expiresAt;
      scheduleRefresh();
      return true;
    }
  } catch (error) {
    // A corrupt entry is dropped below.
  }
  sessionStorage.removeItem(SESSION_KEY);
  return false;
}

// --- views -------------------------------------------------------------------

function showSignedOut() {
  $("auth").hidden = false;
  $("workspace").hidden = true;
  $("sign-out").hidden = true;
  $("whoami").textContent = "";
}

async function showWorkspace() {
  $("auth").hidden = true;
  $("workspace").hidden = false;
  $("sign-out").hidden = false;
  $("whoami").textContent = state.user ? `${state.user.name} <${state.user.email}>` : "";
  await loadGraphs();
}

async function signedIn(reply) {
  setSession(reply.session);
  state.user = reply.user;
  await showWorkspace();
}

// --- graphs ------------------------------------------------------------------

function selectGraph(graph) {
  state.graph = graph;
  $("current-graph").textContent = graph ? `on ${graph.name}` : "";
  for (const item of $("graph-list").children) {
    item.classList.toggle("selected", Boolean(graph) && item.dataset.graphId === graph.graphId);
  }
}

function renderGraphs(graphs) {
  const list = $("graph-list");
  list.replaceChildren();
  for (const graph of graphs) {
    const item = document.createElement("li");
    item.dataset.graphId = graph.graphId;
    const name = document.createElement("span");
    name.textContent = graph.name;
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Open";
    open.addEventListener("click", () => selectGraph(graph));
    item.append(name, open);
    list.append(item);
  }
  if (!graphs.length) {
    const empty = document.createElement("li");
    empty.textContent = "No graphs yet.";
    list.append(empty);
  }
}

async function loadGraphs() {
  try {
    const reply = await api("GET", "/v1/graphs");
    renderGraphs(reply.graphs || []);
    const keep = state.graph && (reply.graphs || []).find((g) => g.graphId === state.graph.graphId);
    selectGraph(keep || (reply.graphs || [])[0] || null);
  } catch (error) {
    renderGraphs([]);
    showError(error);
  }
}

// --- query results -----------------------------------------------------------

function formatValue(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value !== "object") return String(value);
  const [kind] = Object.keys(value);
  if (kind === undefined || kind === "nullValue") return "null";
  const inner = value[kind];
  switch (kind) {
    case "listValue":
      return `[${(inner.values || []).map(formatValue).join(", ")}]`;
    case "mapValue":
      return formatFields(inner.fields);
    case "nodeValue":
      return `(:${inner.label} ${formatFields(inner.properties)})`;
    case "relationshipValue":
      return `[:${inner.label} ${formatFields(inner.properties)}]`;
    case "pathValue":
      return `path of ${(inner.nodes || []).length} nodes`;
    case "dateValue":
      return `${inner.year}-${String(inner.month).padStart(2, "0")}-${String(inner.day).padStart(2, "0")}`;
    default:
      return String(inner);
  }
}

function formatFields(fields) {
  const entries = Object.entries(fields || {}).map(([key, v]) => `${key}: ${formatValue(v)}`);
  return `{${entries.join(", ")}}`;
}

function renderResults(reply) {
  const head = document.createElement("tr");
  for (const column of reply.columns || []) {
    const cell = document.createElement("th");
    cell.textContent = column.name;
    head.append(cell);
  }
  $("results").tHead.replaceChildren(head);
  const rows = (reply.rows || []).map((row) => {
    const line = document.createElement("tr");
    for (const value of row.values || []) {
      const cell = document.createElement("td");
      cell.textContent = formatValue(value);
      line.append(cell);
    }
    return line;
  });
  $("results").tBodies[0].replaceChildren(...rows);
  const truncated = reply.truncated ? " (truncated)" : "";
  const elapsed = Number(reply.executionTimeMs || 0).toFixed(1);
  $("query-summary").textContent = `${reply.rowCount} row(s)${truncated}, ${reply.queryClass}, ${elapsed} ms`;
}

// --- uploads -----------------------------------------------------------------

function formatOf(fileName) {
  const lower = fileName.toLowerCase();
  if (lower.endsWith(".parquet")) return "UPLOAD_FORMAT_PARQUET";
  if (lower.endsWith(".json") || lower.endsWith(".ndjson")) return "UPLOAD_FORMAT_JSON";
  return "UPLOAD_FORMAT_CSV";
}

function sendFile(target, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method || "PUT", target.url);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () =>
      xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`upload failed (HTTP ${xhr.status})`)),
    );
    xhr.addEventListener("error", () => reject(new Error("upload failed (network)")));
    if ((target.method || "PUT").toUpperCase() === "POST") {
      const form = new FormData();
      for (const [name, value] of Object.entries(target.formFields || {})) form.append(name, value);
      form.append("file", file);
      xhr.send(form);
    } else {
      for (const [name, value] of Object.entries(target.headers || {})) {
        if (!["host", "content-length"].includes(name.toLowerCase())) xhr.setRequestHeader(name, value);
      }
      xhr.send(file);
    }
  });
}

async function ingest(graphId, uploadId) {
  const response = await fetch(`/v1/graphs/${encodeURIComponent(graphId)}/uploads/${encodeURIComponent(uploadId)}:ingest`, {
    method: "POST",
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json", Accept: "application/x-ndjson" },
    body: "{}",
    credentials: "omit",
  });
  if (!response.ok) throw new ApiError(response.status, await response.json());
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let last = null;
  for (;;) {
    const { done, value } = await reader.read();
    buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const frame = JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      if (frame.error) throw new ApiError(500, frame.error);
      last = frame.result;
      $("upload-status").textContent = `${last.state}: ${last.rowsLoaded} rows loaded`;
    }
    if (done) return last;
  }
}

async function upload(table, file) {
  const graph = state.graph;
  if (!graph) throw new Error("open or create a graph first");
  const progress = $("upload-progress");
  progress.value = 0;
  $("upload-status").textContent = "Preparing the upload…";
  const base = `/v1/graphs/${encodeURIComponent(graph.graphId)}/uploads`;
  const target = await api("POST", base, {
    tableName: table,
    fileName: file.name,
    format: formatOf(file.name),
    sizeBytes: String(file.size),
  });
  const uploadId = target.upload.uploadId;
  $("upload-status").textContent = "Uploading…";
  await sendFile(target, file, (fraction) => {
    progress.value = Math.round(fraction * 100);
  });
  progress.value = 100;
  $("upload-status").textContent = "Validating…";
  const completed = await api("POST", `${base}/${encodeURIComponent(uploadId)}:complete`, {});
  if (completed.upload.state !== "UPLOAD_STATE_VALIDATED") {
    throw new Error(`validation failed: ${completed.upload.error || completed.upload.state}`);
  }
  const final = await ingest(graph.graphId, uploadId);
  const rows = final && final.upload ? final.upload.rowCount : final ? final.rowsLoaded : "0";
  $("upload-status").textContent = `Loaded ${rows} rows into ${table}.`;
}

// --- wiring ------------------------------------------------------------------

function onSubmit(id, handler) {
  const form = $(id);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    setStatus("");
    try {
      await handler(new FormData(form), form);
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
}

function wire() {
  onSubmit("sign-in-form", async (data) => {
    const reply = await api("POST", "/v1/auth/login", { email: data.get("email"), password: data.get("password") });
    await signedIn(reply);
    setStatus("Signed in.", "ok");
  });
  onSubmit("sign-up-form", async (data) => {
    const reply = await api("POST", "/v1/auth/register", {
      name: data.get("name"),
      email: data.get("email"),
      password: data.get("password"),
    });
    await signedIn(reply);
    setStatus("Account created.", "ok");
  });
  onSubmit("create-graph-form", async (data, form) => {
    const schema = String(data.get("schema") || "")
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    const reply = await api("POST", "/v1/graphs", {
      name: data.get("name"),
      description: data.get("description") || "",
      schema,
    });
    form.reset();
    state.graph = reply.graph;
    await loadGraphs();
    setStatus(`Graph ${reply.graph.name} created.`, "ok");
  });
  onSubmit("query-form", async (data) => {
    if (!state.graph) throw new Error("open or create a graph first");
    const path = `/v1/graphs/${encodeURIComponent(state.graph.graphId)}/query`;
    renderResults(await api("POST", path, { query: data.get("query") }));
  });
  onSubmit("upload-form", async (data) => {
    try {
      await upload(data.get("table"), data.get("file"));
    } catch (error) {
      $("upload-status").textContent = "Upload failed.";
      throw error;
    }
    setStatus("Upload loaded.", "ok");
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await api("POST", "/v1/auth/logout", {});
    } catch (error) {
      // The token is dropped below whatever the server said.
    }
    clearSession();
    showSignedOut();
    setStatus("Signed out.", "ok");
  });
}

async function start() {
  wire();
  if (!restoreSession()) {
    showSignedOut();
    return;
  }
  try {
    state.user = (await api("GET", "/v1/auth/me")).user;
    await showWorkspace();
  } catch (error) {
    clearSession();
    showSignedOut();
  }
}

start();
