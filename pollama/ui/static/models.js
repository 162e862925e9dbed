// The models view: what is installed (GET /api/tags, capabilities from POST /api/show, fetched lazily),
// what is loaded (GET /api/ps), pull with progress (POST /api/pull, streamed), and delete after an
// in-page confirmation (DELETE /api/delete). Everything the server says goes in with textContent.
//
// app.js calls initModels(api, root) once with <section id="models-view">; the view refreshes itself
// when it is shown (root's hidden/class/style change, or a click on #nav-models), and its loaded list
// every few seconds while visible. After a pull or a delete it dispatches "pollama:models-changed" on document, so the
// chat's model list can reload too.

const POLL_MS = 5000;
const SHOW_CONCURRENCY = 2;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

// Decimal units, as Ollama's CLI prints them ("270 MB", "4.7 GB").
export function formatBytes(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) return "";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

// "in 4 minutes", "2 seconds ago", "forever" (keep_alive < 0 is stored as a date far ahead).
export function formatUntil(iso, now = Date.now()) {
  const when = Date.parse(iso);
  if (!iso || Number.isNaN(when)) return "";
  const seconds = Math.round((when - now) / 1000);
  if (seconds > 100 * 365 * 24 * 3600) return "forever";
  if (Math.abs(seconds) < 1) return "now";
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const steps = [
    ["year", 365 * 24 * 3600],
    ["month", 30 * 24 * 3600],
    ["day", 24 * 3600],
    ["hour", 3600],
    ["minute", 60],
    ["second", 1],
  ];
  for (const [unit, size] of steps) {
    if (Math.abs(seconds) >= size || unit === "second") return rtf.format(Math.round(seconds / size), unit);
  }
  return "";
}

// As `ollama ps`: "100% GPU", "100% CPU", or "48%/52% CPU/GPU".
export function formatProcessor(size, sizeVram) {
  if (!size) return "";
  const vram = sizeVram || 0;
  if (vram <= 0) return "100% CPU";
  if (vram >= size) return "100% GPU";
  const gpu = Math.round((vram / size) * 100);
  return `${100 - gpu}%/${gpu}% CPU/GPU`;
}

export function initModels(api, root) {
  root.replaceChildren();
  root.classList.add("models-view");

  // --- layout ---------------------------------------------------------------------------------------
  const refreshButton = el("button", { type: "button", id: "models-refresh", text: "Refresh" });
  const errorLine = el("p", { id: "models-error", className: "error", role: "alert", hidden: true });

  const installedBody = el("tbody");
  const installedTable = el(
    "table",
    { id: "models-table", className: "models-table" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Name", "Size", "Family", "Quantization", "Capabilities", ""].map((h) => el("th", { text: h })),
      ),
    ),
    installedBody,
  );
  const installedEmpty = el("p", { className: "empty", text: "No models installed yet: pull one below.", hidden: true });

  const loadedBody = el("tbody");
  const loadedTable = el(
    "table",
    { id: "loaded-table", className: "models-table" },
    el("thead", {}, el("tr", {}, ...["Name", "Size", "Processor", "Until"].map((h) => el("th", { text: h })))),
    loadedBody,
  );
  const loadedEmpty = el("p", { className: "empty", text: "No model is loaded.", hidden: true });

  const pullName = el("input", {
    id: "pull-name",
    type: "text",
    placeholder: "model name, e.g. llama3.2:1b",
    autocomplete: "off",
    spellcheck: "false",
    "aria-label": "Model to pull",
  });
  const pullButton = el("button", { id: "pull-button", type: "submit", text: "Pull" });
  const pullCancel = el("button", { id: "pull-cancel", type: "button", text: "Cancel", hidden: true });
  const pullForm = el("form", { id: "pull-form", className: "pull-form" }, pullName, pullButton, pullCancel);
  const pullProgress = el("progress", { id: "pull-progress", max: "1", hidden: true });
  const pullStatus = el("p", { id: "pull-status", className: "pull-status", role: "status", "aria-live": "polite" });

  const confirmText = el("p", { id: "delete-question" });
  const confirmButton = el("button", { id: "confirm-delete", type: "button", className: "danger", text: "Delete" });
  const cancelButton = el("button", { id: "cancel-delete", type: "button", text: "Cancel" });
  const dialog = el(
    "dialog",
    { id: "delete-dialog", "aria-labelledby": "delete-question" },
    confirmText,
    el("div", { className: "dialog-buttons" }, cancelButton, confirmButton),
  );

  root.append(
    el("div", { className: "models-header" }, el("h2", { text: "Installed models" }), refreshButton),
    errorLine,
    installedTable,
    installedEmpty,
    el("h2", { text: "Loaded models" }),
    loadedTable,
    loadedEmpty,
    el("h2", { text: "Pull a model" }),
    pullForm,
    pullProgress,
    pullStatus,
    dialog,
  );

  // --- state ----------------------------------------------------------------------------------------
  const showCache = new Map(); // "name@digest" -> Promise<show response>
  let generation = 0; // bumps on each refresh so late /api/show answers go to the right rows
  let loaded = [];
  let pulling = null; // AbortController of the pull under way

  function showError(message) {
    errorLine.textContent = message || "";
    errorLine.hidden = !message;
  }

  function changed() {
    document.dispatchEvent(new CustomEvent("pollama:models-changed"));
  }

  // --- installed ------------------------------------------------------------------------------------
  function capabilitiesCell(model, cell, gen) {
    const key = `${model.name}@${model.digest || ""}`;
    let promise = showCache.get(key);
    if (!promise) {
      promise = queueShow(model.name);
      showCache.set(key, promise);
      promise.catch(() => showCache.delete(key));
    }
    cell.textContent = "…";
    promise.then(
      (show) => {
        if (gen !== generation) return;
        const caps = Array.isArray(show.capabilities) ? show.capabilities : [];
        cell.replaceChildren(...caps.map((c) => el("span", { className: "capability", text: c })));
        if (!caps.length) cell.textContent = "—";
      },
      () => {
        if (gen === generation) cell.textContent = "?";
      },
    );
  }

  // /api/show reads each model's file; ask for a few at a time, not all at once.
  const showQueue = [];
  let showRunning = 0;
  function queueShow(name) {
    return new Promise((resolve, reject) => {
      showQueue.push({ name, resolve, reject });
      pumpShow();
    });
  }
  function pumpShow() {
    while (showRunning < SHOW_CONCURRENCY && showQueue.length) {
      const { name, resolve, reject } = showQueue.shift();
      showRunning += 1;
      api
        .post("/api/show", { model: name })
        .then(resolve, reject)
        .finally(() => {
          showRunning -= 1;
          pumpShow();
        });
    }
  }

  function renderInstalled(models) {
    const gen = generation;
    const rows = models.map((model) => {
      const details = model.details || {};
      const caps = el("td", { className: "capabilities" });
      const remove = el("button", {
        type: "button",
        className: "delete-model danger",
        text: "Delete",
        title: `Delete ${model.name}`,
      });
      remove.addEventListener("click", () => askDelete(model.name));
      const row = el(
        "tr",
        { className: "model-row", dataset: { model: model.name } },
        el("td", { className: "name", text: model.name }),
        el("td", { className: "size", text: formatBytes(model.size) }),
        el("td", { className: "family", text: details.family || "" }),
        el("td", { className: "quantization", text: details.quantization_level || "" }),
        caps,
        el("td", { className: "actions" }, remove),
      );
      capabilitiesCell(model, caps, gen);
      return row;
    });
    installedBody.replaceChildren(...rows);
    installedEmpty.hidden = models.length > 0;
  }

  // --- loaded ---------------------------------------------------------------------------------------
  function renderLoaded() {
    const rows = loaded.map((model) =>
      el(
        "tr",
        { className: "loaded-row", dataset: { model: model.name || model.model || "" } },
        el("td", { className: "name", text: model.name || model.model || "" }),
        el("td", { className: "size", text: formatBytes(model.size) }),
        el("td", { className: "processor", text: formatProcessor(model.size, model.size_vram) }),
        el("td", { className: "until", text: formatUntil(model.expires_at), title: model.expires_at || "" }),
      ),
    );
    loadedBody.replaceChildren(...rows);
    loadedEmpty.hidden = loaded.length > 0;
  }

  // --- refresh --------------------------------------------------------------------------------------
  let refreshing = null;
  async function refresh() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      generation += 1;
      try {
        const [tags, ps] = await Promise.all([api.get("/api/tags"), api.get("/api/ps")]);
        showError("");
        const models = (tags.models || []).slice().sort((a, b) => a.name.localeCompare(b.name));
        renderInstalled(models);
        loaded = ps.models || [];
        renderLoaded();
      } catch (err) {
        showError(`Could not list the models: ${err.message}`);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  async function refreshLoaded() {
    try {
      const ps = await api.get("/api/ps");
      loaded = ps.models || [];
    } catch {
      /* keep what is shown; the next full refresh reports the error */
    }
    renderLoaded();
  }

  refreshButton.addEventListener("click", () => refresh());

  // --- delete ---------------------------------------------------------------------------------------
  let pendingDelete = null;
  function askDelete(name) {
    pendingDelete = name;
    confirmText.textContent = `Delete ${name}? Its files are removed unless another model shares them.`;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    cancelButton.focus();
  }
  function closeDialog() {
    if (typeof dialog.close === "function" && dialog.open) dialog.close();
    else dialog.removeAttribute("open");
  }
  cancelButton.addEventListener("click", () => {
    pendingDelete = null;
    closeDialog();
  });
  dialog.addEventListener("cancel", () => {
    pendingDelete = null;
  });
  confirmButton.addEventListener("click", async () => {
    const name = pendingDelete;
    pendingDelete = null;
    closeDialog();
    if (!name) return;
    const row = installedBody.querySelector(`tr[data-model="${CSS.escape(name)}"]`);
    if (row) row.classList.add("deleting");
    try {
      await api.del("/api/delete", { model: name });
      showError("");
      changed();
    } catch (err) {
      showError(`Could not delete ${name}: ${err.message}`);
    }
    await refresh();
  });

  // --- pull -----------------------------------------------------------------------------------------
  function setPullStatus(text, isError = false) {
    pullStatus.textContent = text;
    pullStatus.classList.toggle("error", isError);
  }

  pullForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = pullName.value.trim();
    if (!name || pulling) return;
    pulling = new AbortController();
    pullButton.disabled = true;
    pullName.disabled = true;
    pullCancel.hidden = false;
    pullProgress.hidden = false;
    pullProgress.removeAttribute("value"); // indeterminate until a layer reports its total
    setPullStatus(`Pulling ${name}…`);
    let ok = false;
    try {
      await api.stream(
        "/api/pull",
        { model: name, stream: true },
        (line) => {
          const status = line.status || "";
          if (typeof line.total === "number" && line.total > 0) {
            const completed = typeof line.completed === "number" ? line.completed : 0;
            pullProgress.max = line.total;
            pullProgress.value = Math.min(completed, line.total);
            const pct = Math.floor((Math.min(completed, line.total) / line.total) * 100);
            setPullStatus(`${status} ${pct}% (${formatBytes(completed)} / ${formatBytes(line.total)})`);
          } else {
            setPullStatus(status);
          }
          if (status === "success") ok = true;
        },
        pulling.signal,
      );
      if (ok) {
        pullProgress.max = 1;
        pullProgress.value = 1;
        setPullStatus(`Pulled ${name}: success`);
        pullName.value = "";
        changed();
      } else {
        setPullStatus(`Pull of ${name} ended without success`, true);
      }
    } catch (err) {
      if (err && err.name === "AbortError") setPullStatus(`Pull of ${name} cancelled`);
      else setPullStatus(`Error: ${err && err.message ? err.message : String(err)}`, true);
      pullProgress.hidden = true;
    } finally {
      pulling = null;
      pullButton.disabled = false;
      pullName.disabled = false;
      pullCancel.hidden = true;
    }
    await refresh();
  });

  pullCancel.addEventListener("click", () => {
    if (pulling) pulling.abort();
  });

  // --- when to refresh ------------------------------------------------------------------------------
  function visible() {
    return !root.hidden && root.offsetParent !== null;
  }
  let wasVisible = false;
  function onVisibility() {
    const now = visible();
    if (now && !wasVisible) refresh();
    wasVisible = now;
  }
  new MutationObserver(onVisibility).observe(root, { attributes: true, attributeFilter: ["hidden", "class", "style"] });
  const nav = document.getElementById("nav-models");
  if (nav) nav.addEventListener("click", () => setTimeout(() => refresh(), 0));
  window.addEventListener("hashchange", () => setTimeout(onVisibility, 0));
  setInterval(() => {
    if (!visible() || document.hidden) return;
    refreshLoaded();
  }, POLL_MS);

  // Nothing is fetched until the view is first shown (a page opened on the chat asks the server once).
  wasVisible = visible();
  if (wasVisible) refresh();
  return { refresh };
}
