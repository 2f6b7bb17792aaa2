// The page's only link to the server: this front's OpenAI API (plus its deep health report and admin
// routes under /v1/tmr). Every request carries the API key the user typed, when there is one.

let apiKey = sessionStorage.getItem("tmr-api-key") || "";

export function setApiKey(key) {
  apiKey = key.trim();
  sessionStorage.setItem("tmr-api-key", apiKey);
}

export function getApiKey() { return apiKey; }

function headers(extra = {}, key = apiKey) {
  const h = { ...extra };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

/** An Error with the server's own message (OpenAI's error body: {error: {message, param}}). */
async function failure(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body.error?.message) message = `${resp.status}: ${body.error.message}`;
  } catch { /* not JSON: the status says enough */ }
  return new Error(message);
}

async function getJson(path, key) {
  const resp = await fetch(path, { headers: headers({}, key) });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

export async function listModels() {
  return (await getJson("/v1/models")).data.map((m) => m.id);
}

export async function deepHealth() {
  return getJson("/v1/tmr/health");
}

/** The signed-in tenant key's own usage, limits and budget left; null when the page's key is not a tenant's. */
export async function ownUsage() {
  if (!apiKey) return null;
  const resp = await fetch("/v1/tmr/usage", { headers: headers() });
  if (resp.status === 404) return null;
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

/** Load or unload `model` (the admin routes need the admin key, beside the API key). */
export async function admin(model, action, key) {
  const resp = await fetch(`/v1/tmr/models/${encodeURIComponent(model)}/${action}`,
                           { method: "POST", headers: headers({ "X-TMR-Admin-Key": key }) });
  if (!resp.ok) throw await failure(resp);
  return resp.json().catch(() => ({}));
}

/**
 * One chat completion. `onText(piece)` gets the text as it streams. Resolves to
 * {text, routing, model, audio (base64 WAV or null), visemes (or null), firstMs, lastMs}.
 */
export async function chat(body, onText = () => {}) {
  const started = performance.now();
  const resp = await fetch("/v1/chat/completions", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
  });
  if (!resp.ok) throw await failure(resp);
  const out = { text: "", routing: null, model: null, audio: null, visemes: null, firstMs: null, lastMs: null };
  const took = () => performance.now() - started;
  if (!body.stream) {
    const answer = await resp.json();
    const message = answer.choices[0].message;
    Object.assign(out, { text: message.content || "", routing: answer.routing || null, model: answer.model,
                         audio: message.audio?.data || null, visemes: message.visemes || null });
    out.firstMs = out.lastMs = took();
    onText(out.text);
    return out;
  }
  for await (const chunk of events(resp.body)) {
    if (chunk.error) throw new Error(chunk.error.message || "the answer broke off");
    const delta = chunk.choices?.[0]?.delta || {};
    if (delta.content) {
      out.firstMs ??= took();
      out.text += delta.content;
      onText(delta.content);
    }
    if (delta.audio?.data) out.audio = (out.audio || "") + delta.audio.data;
    if (delta.visemes) out.visemes = delta.visemes;
    if (chunk.routing) { out.routing = chunk.routing; out.model = chunk.model; }
  }
  out.lastMs = took();
  out.firstMs ??= out.lastMs;
  return out;
}

/** The JSON bodies of a server-sent event stream, up to `data: [DONE]`. */
async function* events(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") { reader.cancel(); return; }
      yield JSON.parse(data);
    }
  }
}
