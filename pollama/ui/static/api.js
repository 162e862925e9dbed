// The page's only door to the server: same-origin fetches of the native API, with the API key (if any)
// as a bearer token. Contract shared with models.js: get, post, del, stream; each throws an Error with
// the server's `error` message on a non-2xx answer (err.status holds the status).

const KEY = "pollama.apiKey";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

// Called with no arguments when the server answers 401; resolves once the user gave a key (retry) or
// rejects (give up). app.js installs the dialog.
let askForKey = null;

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = localStorage.getItem(KEY);
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text);
      const err = body && body.error;
      message = typeof err === "string" ? err : (err && err.message) || message;
    } catch {
      if (text.trim()) message = text.trim();
    }
  } catch {
    /* keep the status line */
  }
  return new ApiError(message, res.status);
}

async function request(method, path, body, signal) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, headers: headers(body !== undefined), signal };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(path, init);
    if (res.ok) return res;
    if (res.status === 401 && askForKey && attempt < 3) {
      await askForKey(await failure(res));
      continue;
    }
    throw await failure(res);
  }
}

async function json(res) {
  const text = await res.text();
  return text ? JSON.parse(text) : {};
}

export const api = {
  async get(path) {
    return json(await request("GET", path));
  },
  async post(path, body) {
    return json(await request("POST", path, body ?? {}));
  },
  async del(path, body) {
    return json(await request("DELETE", path, body ?? {}));
  },
  // POST body, then call onLine(object) for each NDJSON line until the stream ends. An `error` line
  // in the stream is thrown as an ApiError. Abort with `signal`.
  async stream(path, body, onLine, signal) {
    const res = await request("POST", path, body, signal);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const emit = (line) => {
      if (!line.trim()) return;
      const obj = JSON.parse(line);
      if (obj && typeof obj.error === "string") throw new ApiError(obj.error, res.status);
      onLine(obj);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        emit(line);
      }
    }
    buffer += decoder.decode();
    emit(buffer);
  },
  key() {
    return localStorage.getItem(KEY) || "";
  },
  setKey(key) {
    if (key) localStorage.setItem(KEY, key);
    else localStorage.removeItem(KEY);
  },
  onUnauthorized(handler) {
    askForKey = handler;
  },
};
