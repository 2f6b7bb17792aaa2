// The conversation as the page shows it, and as it is sent: OpenAI messages with content parts.

import { h } from "./dom.js";

export class Conversation {
  constructor(list) {
    this.list = list;
    this.messages = [];  // what is sent: [{role, content}]
  }

  /** The user's turn: text plus an optional content part (image, audio, video). */
  addUser(text, part, attachmentName) {
    const content = part ? [{ type: "text", text }, part] : text;
    this.messages.push({ role: "user", content });
    this._show("user", "You", text, attachmentName ? h("div", { class: "meta" }, `Attached: ${attachmentName}`) : null);
  }

  /** The assistant's turn, filled as the answer streams in. */
  addAssistant() {
    const text = h("div", { class: "text" });
    const meta = h("div", { class: "meta" }, "…");
    const item = this._show("assistant", "Router", text, meta);
    item.setAttribute("aria-busy", "true");
    const self = this;
    return {
      append(piece) { text.append(piece); self.list.scrollTop = self.list.scrollHeight; },
      replace(whole) { text.textContent = whole; },
      done(answer) {
        item.removeAttribute("aria-busy");
        const d = answer.routing;
        meta.textContent = d ? `${d.model} · decided by ${d.decided_by} · ${d.use_case}` : answer.model || "";
        self._keepText();
        self.messages.push({ role: "assistant", content: answer.text });
      },
      failed(message) {
        item.removeAttribute("aria-busy");
        item.classList.add("error");
        meta.textContent = message;
        self.messages.pop();  // the question that failed is not part of the conversation
      },
      audio(player) { item.append(player); },
    };
  }

  /** The question just answered keeps its text only: an attachment goes with its own turn (sent again,
   *  the server would read it again for every later question, which shows no attachment). */
  _keepText() {
    const asked = this.messages[this.messages.length - 1];
    if (Array.isArray(asked.content)) asked.content = asked.content.find((part) => part.type === "text").text;
  }

  _show(role, who, text, extra) {
    const item = h("li", { class: `msg ${role}` }, h("span", { class: "who" }, who),
                   text instanceof Node ? text : h("div", { class: "text" }, text), extra);
    this.list.append(item);
    this.list.scrollTop = this.list.scrollHeight;
    return item;
  }
}
