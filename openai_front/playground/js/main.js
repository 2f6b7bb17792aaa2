// Wires the page: the composer sends through the OpenAI API; each answer updates the decision,
// the avatar (speech answers) and the models panel.

import { chat, getApiKey, listModels, setApiKey } from "./api.js";
import { mountAvatar, speak } from "./avatar.js";
import { Conversation } from "./chat.js";
import { showDecision } from "./decision.js";
import { canRecord, contentPart, record } from "./media.js";
import { watchModels } from "./models.js";

const $ = (id) => document.getElementById(id);
const SPOKEN = new Set(["tts", "avatar"]);  // use cases whose answer is speech
const PANEL_WAIT_MS = 1000;
const conversation = new Conversation($("messages"));
let attachment = null;  // {file, part}
let refreshModels = () => {};

function setAttachment(file, part) {
  attachment = file ? { file, part } : null;
  $("attachment").textContent = file ? `Attached: ${file.name} (${Math.ceil(file.size / 1024)} KB)` : "";
  $("clear-attachment").hidden = !file;
  if (!file) $("attach").value = "";
}

function requestBody(stream) {
  const body = { model: $("model").value, messages: conversation.messages, stream, prefer: $("prefer").value };
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  return body;
}

async function answer(view) {
  let got = await chat(requestBody($("stream").checked), (piece) => view.append(piece));
  if (SPOKEN.has(got.routing?.use_case) && !got.audio) {
    // Speech comes only with a whole answer: ask again without streaming.
    got = await chat(requestBody(false));
    view.replace(got.text);
  }
  return got;
}

/** The models panel redrawn from a report taken now: an answer may have loaded models (its voice
 *  among them), shown before it speaks, since speech can play for many seconds; a slow report holds
 *  the voice back a second at most. */
function modelsShown() {
  return Promise.race([refreshModels(), new Promise((done) => setTimeout(done, PANEL_WAIT_MS))]);
}

async function send(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text) return;
  $("send").disabled = true;
  $("prompt").value = "";
  conversation.addUser(text, attachment?.part, attachment?.file.name);
  setAttachment(null);
  const view = conversation.addAssistant();
  try {
    const got = await answer(view);
    view.done(got);
    showDecision($("decision"), got.routing, got);
    await modelsShown();
    if (got.audio) {
      const voice = got.routing?.steps?.find((s) => s.step === "speak")?.model || got.routing?.model || got.model;
      $("avatar-hint").textContent = `Speaking: ${voice}${got.visemes?.length ? ", lips from its viseme timeline" : ""}`;
      await speak($("voice"), got.audio, got.visemes);
    }
  } catch (err) {
    view.failed(err.message);
    refreshModels();
  } finally {
    $("send").disabled = false;
    $("prompt").focus();
  }
}

async function attach() {
  const file = $("attach").files[0];
  if (!file) return setAttachment(null);
  try {
    setAttachment(file, await contentPart(file));
  } catch (err) {
    setAttachment(null);
    $("attachment").textContent = err.message;
  }
}

function recorder() {
  const button = $("record");
  let session = null;
  button.hidden = !canRecord();
  button.addEventListener("click", async () => {
    try {
      if (!session) {
        session = await record();
        button.setAttribute("aria-pressed", "true");
        button.textContent = "Stop recording";
        return;
      }
      const file = await session.stop();
      setAttachment(file, await contentPart(file));
    } catch (err) {
      $("attachment").textContent = `Recording: ${err.message}`;
    }
    session = null;
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Record from microphone";
  });
}

async function fillModels() {
  try {
    const select = $("model");
    const names = await listModels();
    select.replaceChildren(...names.map((name) => new Option(name, name, name === "auto", name === "auto")));
  } catch (err) {
    $("attachment").textContent = `Models: ${err.message}`;
  }
}

function start() {
  $("api-key").value = getApiKey();
  $("api-key").addEventListener("change", () => { setApiKey($("api-key").value); fillModels(); refreshModels(); });
  $("composer").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey || e.isComposing) return;
    e.preventDefault();
    $("composer").requestSubmit();
  });
  $("attach").addEventListener("change", attach);
  $("clear-attachment").addEventListener("click", () => setAttachment(null));
  recorder();
  mountAvatar($("avatar"));
  fillModels();
  refreshModels = watchModels($("models"), $("admin-key"));
}

start();
