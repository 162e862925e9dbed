// The chat view: chats in localStorage, a model picker, streaming answers from /api/chat.
// Model output goes through markdown.js (escaped first); everything else goes in with textContent.

import { renderMarkdown } from "./markdown.js";

const CHATS = "pollama.chats";
const CURRENT = "pollama.currentChat";
const LAST_MODEL = "pollama.model";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function newId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (a page not in a secure context, or permission refused): the old way.
    const area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

function flash(button, text) {
  const old = button.textContent;
  button.textContent = text;
  setTimeout(() => (button.textContent = old), 1200);
}

// The image's type from its first bytes (base64), for showing it back.
function dataUrl(b64) {
  const types = { iVBOR: "image/png", "/9j/": "image/jpeg", R0lG: "image/gif", UklG: "image/webp" };
  const type = Object.entries(types).find(([head]) => b64.startsWith(head));
  return `data:${type ? type[1] : "application/octet-stream"};base64,${b64}`;
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function initChat(api) {
  const select = $("model-select");
  const prompt = $("prompt");
  const messagesEl = $("messages");
  const sendBtn = $("send");
  const stopBtn = $("stop");
  const errorEl = $("error");
  const imageInput = $("image-input");
  const attachmentsEl = $("attachments");

  let chats = load();
  let current = localStorage.getItem(CURRENT);
  let attachments = []; // base64 strings for the next message
  let controller = null; // the running answer's AbortController
  const capabilities = new Map(); // model -> Promise<string[]>
  const views = new WeakMap(); // message object -> its elements

  function load() {
    try {
      const list = JSON.parse(localStorage.getItem(CHATS) || "[]");
      return Array.isArray(list) ? list.filter((c) => c && Array.isArray(c.messages)) : [];
    } catch {
      return [];
    }
  }

  function save() {
    try {
      localStorage.setItem(CHATS, JSON.stringify(chats));
    } catch {
      // Over the storage quota (images are large): keep the chats, drop their images from storage.
      const slim = chats.map((c) => ({ ...c, messages: c.messages.map(({ images, ...m }) => m) }));
      try {
        localStorage.setItem(CHATS, JSON.stringify(slim));
      } catch (err) {
        showError("Could not save the chats: " + err.message);
      }
    }
    if (current) localStorage.setItem(CURRENT, current);
  }

  function chat() {
    let c = chats.find((x) => x.id === current);
    if (!c) {
      c = chats[0] || createChat();
      current = c.id;
    }
    return c;
  }

  function createChat() {
    const c = { id: newId(), title: "New chat", model: select.value || localStorage.getItem(LAST_MODEL) || "", system: "", temperature: "", num_ctx: "", messages: [], updated: Date.now() };
    chats.unshift(c);
    return c;
  }

  function showError(message) {
    errorEl.textContent = message || "";
    errorEl.hidden = !message;
  }

  // --- models -------------------------------------------------------------------------------------

  async function refreshModels() {
    let models;
    try {
      models = (await api.get("/api/tags")).models || [];
    } catch (err) {
      showError("Could not list the models: " + err.message);
      return;
    }
    const names = models.map((m) => m.name || m.model).sort();
    const wanted = chat().model || select.value || localStorage.getItem(LAST_MODEL);
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    if (!names.length) {
      select.append(new Option("no models installed", ""));
      showError("No models are installed: pull one in the Models view or with `pollama pull`.");
    } else if (errorEl.textContent.startsWith("No models") || errorEl.textContent.startsWith("Could not list")) {
      showError("");
    }
    if (wanted && names.includes(wanted)) select.value = wanted;
    else if (wanted && wanted !== select.value && chat().messages.length) {
      select.prepend(new Option(wanted + " (not installed)", wanted));
      select.value = wanted;
    }
    await modelChanged(false);
  }

  function capabilitiesOf(model) {
    if (!model) return Promise.resolve([]);
    if (!capabilities.has(model)) {
      const p = api.post("/api/show", { model }).then(
        (r) => r.capabilities || [],
        (err) => {
          capabilities.delete(model);
          throw err;
        },
      );
      capabilities.set(model, p);
    }
    return capabilities.get(model);
  }

  async function modelChanged(byUser) {
    const model = select.value;
    if (byUser) {
      chat().model = model;
      localStorage.setItem(LAST_MODEL, model);
      save();
    }
    let caps = [];
    try {
      caps = await capabilitiesOf(model);
    } catch {
      caps = [];
    }
    if (select.value !== model) return;
    $("model-caps").textContent = caps.filter((c) => c !== "completion").join(" · ");
    const vision = caps.includes("vision");
    $("image-field").hidden = !vision;
    imageInput.disabled = !vision;
    if (!vision && attachments.length) {
      attachments = [];
      renderAttachments();
    }
  }

  select.addEventListener("change", () => modelChanged(true));

  // --- the chat list ------------------------------------------------------------------------------

  function renderList() {
    const items = chats.map((c) => {
      const li = el("li", "chat-item" + (c.id === current ? " active" : ""));
      li.dataset.id = c.id;
      const open = el("button", "chat-open", c.title || "New chat");
      open.type = "button";
      open.title = c.title || "New chat";
      if (c.id === current) open.setAttribute("aria-current", "true");
      const del = el("button", "chat-delete", "\u00d7");
      del.type = "button";
      del.setAttribute("aria-label", "Delete chat " + (c.title || ""));
      li.append(open, del);
      return li;
    });
    $("chat-list").replaceChildren(...items);
  }

  $("chat-list").addEventListener("click", (e) => {
    const li = e.target.closest(".chat-item");
    if (!li) return;
    if (e.target.closest(".chat-delete")) {
      if (controller && li.dataset.id === current) controller.abort();
      chats = chats.filter((c) => c.id !== li.dataset.id);
      if (li.dataset.id === current) current = chats[0] ? chats[0].id : null;
      if (!chats.length) current = createChat().id;
    } else {
      current = li.dataset.id;
      $("sidebar").classList.remove("open");
    }
    save();
    showChat();
  });

  $("new-chat").addEventListener("click", () => {
    const empty = chats.find((c) => !c.messages.length);
    current = (empty || createChat()).id;
    if (empty) empty.model = select.value || empty.model;
    save();
    showChat();
    $("sidebar").classList.remove("open");
    prompt.focus();
  });

  // --- settings -----------------------------------------------------------------------------------

  const settings = { "system-prompt": "system", temperature: "temperature", "num-ctx": "num_ctx" };
  for (const [id, key] of Object.entries(settings)) {
    $(id).addEventListener("input", () => {
      chat()[key] = $(id).value;
      save();
    });
  }

  // --- messages -----------------------------------------------------------------------------------

  function showChat() {
    const c = chat();
    for (const [id, key] of Object.entries(settings)) $(id).value = c[key] ?? "";
    if (c.model && [...select.options].some((o) => o.value === c.model)) select.value = c.model;
    else if (c.model && !c.messages.length) c.model = select.value;
    modelChanged(false);
    renderList();
    renderMessages();
    showError("");
  }

  function renderMessages() {
    const c = chat();
    const lastAssistant = c.messages.map((m) => m.role).lastIndexOf("assistant");
    messagesEl.replaceChildren(...c.messages.map((m, i) => messageView(m, i === lastAssistant)));
    messagesEl.scrollTop = messagesEl.scrollHeight;
  }

  function messageView(m, last) {
    const node = el("div", "message " + (m.role === "user" ? "user" : "assistant"));
    node.append(el("div", "role", m.role === "user" ? "You" : m.model || "Assistant"));
    const view = { node, thinking: null, thinkingText: null, content: el("div", "content"), tools: null, actions: null, rendered: "" };
    if (m.role === "user") {
      view.content.textContent = m.content;
      node.append(view.content);
      if (m.images && m.images.length) {
        const box = el("div", "images");
        for (const b64 of m.images) {
          const img = el("img");
          img.alt = "attached image";
          img.src = dataUrl(b64);
          box.append(img);
        }
        node.append(box);
      } else if (m.imageCount) {
        node.append(el("div", "images", `(${m.imageCount} image(s), not kept)`));
      }
    } else {
      node.append(view.content);
      views.set(m, view);
      updateAssistant(m, last);
    }
    return node;
  }

  // Bring an answer's elements up to date with its message (called for every streamed chunk, at most
  // once per animation frame).
  function updateAssistant(m, last) {
    const view = views.get(m);
    if (!view) return;
    const { node } = view;
    node.classList.toggle("pending", Boolean(m.pending));
    if (m.thinking) {
      if (!view.thinking) {
        view.thinking = el("details", "thinking");
        view.thinking.append(el("summary"), (view.thinkingText = el("div", "thinking-text")));
        node.insertBefore(view.thinking, view.content);
      }
      view.thinking.firstChild.textContent = m.pending && !m.content ? "Thinking\u2026" : "Thinking";
      view.thinkingText.textContent = m.thinking;
    }
    if (view.rendered !== m.content) {
      view.content.innerHTML = renderMarkdown(m.content);
      view.rendered = m.content;
    }
    if (m.tool_calls && m.tool_calls.length) {
      if (!view.tools) {
        view.tools = el("div", "tool-calls");
        view.content.after(view.tools);
      }
      view.tools.replaceChildren(
        ...m.tool_calls.map((call) => {
          const fn = call.function || {};
          const box = el("div", "tool-call");
          box.append(el("strong", "tool-name", "Tool call: " + (fn.name || "?")), el("pre", "", JSON.stringify(fn.arguments ?? {}, null, 2)));
          return box;
        }),
      );
    }
    if (view.error) view.error.remove();
    if (m.error) {
      view.error = el("div", "error", m.error);
      node.append(view.error);
    }
    if (!m.pending) {
      if (view.actions) view.actions.remove();
      view.actions = el("div", "actions");
      const copy = el("button", "copy", "Copy");
      copy.type = "button";
      copy.setAttribute("aria-label", "Copy the answer");
      view.actions.append(copy);
      if (last) {
        const again = el("button", "regenerate", "Regenerate");
        again.type = "button";
        again.setAttribute("aria-label", "Ask again for this answer");
        view.actions.append(again);
      }
      if (m.stats) view.actions.append(el("span", "meta", m.stats));
      node.append(view.actions);
    }
  }

  messagesEl.addEventListener("click", async (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    if (button.classList.contains("copy-code")) {
      const code = button.closest(".code-block").querySelector("code").textContent;
      flash(button, (await copyText(code)) ? "Copied" : "Copy failed");
    } else if (button.classList.contains("copy")) {
      const index = [...messagesEl.children].indexOf(button.closest(".message"));
      const m = chat().messages[index];
      if (m) flash(button, (await copyText(m.content)) ? "Copied" : "Copy failed");
    } else if (button.classList.contains("regenerate")) {
      regenerate();
    }
  });

  // --- sending ------------------------------------------------------------------------------------

  function setStreaming(on) {
    messagesEl.dataset.state = on ? "streaming" : "idle";
    sendBtn.disabled = on;
    stopBtn.disabled = !on;
  }

  function nearBottom() {
    return messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 80;
  }

  async function answer(c) {
    const model = select.value;
    if (!model) {
      showError("Pick a model first.");
      return;
    }
    showError("");
    c.model = model;
    let caps = [];
    try {
      caps = await capabilitiesOf(model);
    } catch {
      caps = [];
    }
    const history = c.messages.map((m) => {
      const out = { role: m.role, content: m.content || "" };
      if (m.images && m.images.length) out.images = m.images;
      if (m.tool_calls && m.tool_calls.length) out.tool_calls = m.tool_calls;
      return out;
    });
    if (c.system && c.system.trim()) history.unshift({ role: "system", content: c.system });
    const options = {};
    const temperature = parseFloat(c.temperature);
    const numCtx = parseInt(c.num_ctx, 10);
    if (Number.isFinite(temperature)) options.temperature = temperature;
    if (Number.isFinite(numCtx) && numCtx > 0) options.num_ctx = numCtx;
    const body = { model, messages: history, stream: true };
    if (Object.keys(options).length) body.options = options;
    if (caps.includes("thinking")) body.think = true;

    const m = { role: "assistant", model, content: "", thinking: "", pending: true };
    c.messages.push(m);
    c.updated = Date.now();
    if (c.id === current) renderMessages();
    controller = new AbortController();
    setStreaming(true);
    let frame = 0;
    const schedule = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        if (c.id !== current) return;
        const stick = nearBottom();
        updateAssistant(m, true);
        if (stick) messagesEl.scrollTop = messagesEl.scrollHeight;
      });
    };
    try {
      await api.stream(
        "/api/chat",
        body,
        (line) => {
          const msg = line.message || {};
          if (msg.content) m.content += msg.content;
          if (msg.thinking) m.thinking += msg.thinking;
          if (msg.tool_calls) m.tool_calls = (m.tool_calls || []).concat(msg.tool_calls);
          if (line.done) {
            const secs = (line.eval_duration || 0) / 1e9;
            if (line.eval_count) m.stats = `${line.eval_count} tokens` + (secs > 0 ? `, ${(line.eval_count / secs).toFixed(1)} tokens/s` : "");
            if (line.done_reason && line.done_reason !== "stop") m.stats = (m.stats ? m.stats + " · " : "") + line.done_reason;
          }
          schedule();
        },
        controller.signal,
      );
    } catch (err) {
      if (err.name === "AbortError") m.stats = "stopped";
      else m.error = err.message || String(err);
    } finally {
      if (frame) cancelAnimationFrame(frame);
      frame = 0;
      controller = null;
      delete m.pending;
      if (!m.thinking) delete m.thinking;
      setStreaming(false);
      save();
      if (c.id === current) {
        const stick = nearBottom();
        renderMessages();
        if (!stick) messagesEl.scrollTop = messagesEl.scrollHeight;
      }
    }
  }

  async function send() {
    if (controller) return;
    const text = prompt.value.trim();
    if (!text && !attachments.length) return;
    const c = chat();
    const m = { role: "user", content: text };
    if (attachments.length) {
      m.images = attachments;
      m.imageCount = attachments.length;
    }
    c.messages.push(m);
    if (!c.messages.some((x) => x !== m && x.role === "user")) c.title = text.slice(0, 60) || "Image";
    chats = [c, ...chats.filter((x) => x !== c)];
    prompt.value = "";
    autosize();
    attachments = [];
    imageInput.value = "";
    renderAttachments();
    renderList();
    save();
    await answer(c);
  }

  function regenerate() {
    if (controller) return;
    const c = chat();
    const lastUser = c.messages.map((m) => m.role).lastIndexOf("user");
    if (lastUser < 0) return;
    c.messages.splice(lastUser + 1);
    answer(c);
  }

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  stopBtn.addEventListener("click", () => controller && controller.abort());

  function autosize() {
    prompt.style.height = "auto";
    prompt.style.height = Math.min(prompt.scrollHeight + 2, window.innerHeight * 0.4) + "px";
  }
  prompt.addEventListener("input", autosize);

  // --- images -------------------------------------------------------------------------------------

  function renderAttachments() {
    attachmentsEl.replaceChildren(
      ...attachments.map((b64, i) => {
        const box = el("span", "attachment");
        const img = el("img");
        img.alt = `image ${i + 1} to send`;
        img.src = dataUrl(b64);
        const remove = el("button", "quiet", "\u00d7");
        remove.type = "button";
        remove.setAttribute("aria-label", `Remove image ${i + 1}`);
        remove.addEventListener("click", () => {
          attachments.splice(i, 1);
          renderAttachments();
        });
        box.append(img, remove);
        return box;
      }),
    );
  }

  imageInput.addEventListener("change", async () => {
    try {
      const files = [...imageInput.files];
      attachments = attachments.concat(await Promise.all(files.map(readFile)));
      renderAttachments();
    } catch (err) {
      showError("Could not read the image: " + err.message);
    }
    imageInput.value = "";
  });

  // --- start --------------------------------------------------------------------------------------

  chat();
  showChat();
  setStreaming(false);
  return { refreshModels };
}
