// The page's entry: the two views (Chat, Models), the API-key dialog, and starting each view.

import { api } from "./api.js";
import { initChat } from "./chat.js";

const $ = (id) => document.getElementById(id);

// --- the API key: asked for when a call answers 401, kept in localStorage -------------------------

let pending = null;

function askForKey(reason) {
  if (pending) return pending;
  const dialog = $("api-key-dialog");
  const input = $("api-key-input");
  $("api-key-reason").textContent = reason ? String(reason.message || reason) : "Enter this server's API key, or leave it empty to send none.";
  input.value = api.key();
  pending = new Promise((resolve, reject) => {
    const done = (ok) => {
      $("api-key-save").onclick = $("api-key-cancel").onclick = dialog.oncancel = input.onkeydown = null;
      if (dialog.open) dialog.close();
      pending = null;
      if (ok) {
        api.setKey(input.value.trim());
        resolve();
      } else {
        reject(reason instanceof Error ? reason : new Error("no API key given"));
      }
    };
    $("api-key-save").onclick = () => done(true);
    $("api-key-cancel").onclick = () => done(false);
    dialog.oncancel = (e) => {
      e.preventDefault();
      done(false);
    };
    input.onkeydown = (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        done(true);
      }
    };
  });
  dialog.showModal();
  input.focus();
  return pending;
}

api.onUnauthorized(askForKey);
$("api-key-form").addEventListener("submit", (e) => e.preventDefault());

// --- views ----------------------------------------------------------------------------------------

const chat = initChat(api);

function show(view) {
  const models = view === "models";
  $("chat-view").hidden = models;
  $("models-view").hidden = !models;
  $("nav-chat").setAttribute("aria-pressed", String(!models));
  $("nav-models").setAttribute("aria-pressed", String(models));
  if (location.hash !== (models ? "#models" : "")) history.replaceState(null, "", models ? "#models" : location.pathname);
  if (!models) chat.refreshModels();
}

$("nav-chat").addEventListener("click", () => show("chat"));
$("nav-models").addEventListener("click", () => show("models"));
$("api-key-button").addEventListener("click", () => askForKey(null).then(() => chat.refreshModels(), () => {}));
$("toggle-sidebar").addEventListener("click", () => $("sidebar").classList.toggle("open"));
document.addEventListener("pollama:models-changed", () => chat.refreshModels());

// The models view is its own module (models.js); the page works without it.
import("./models.js")
  .then((m) => m.initModels(api, $("models-view")))
  .catch((err) => {
    console.warn("models view unavailable:", err);
    $("models-view").textContent = "The models view could not be loaded.";
  });

show(location.hash === "#models" ? "models" : "chat");
