// The routing decision of one answer, drawn: what the classifier saw and how sure it was, the
// candidates and the signal that decided, what was skipped and why, fallbacks, and a timeline.

import { h, ms, pct } from "./dom.js";

const SIGNALS = [["use_case", "Use case"], ["language", "Language"], ["complexity", "Complexity"], ["modality", "Modality"]];

function signals(d) {
  return h("dl", { class: "signals" }, SIGNALS.map(([key, label]) => {
    const conf = d.confidence?.[key];
    return [h("dt", {}, label), h("dd", { "data-signal": key }, d[key] ?? "—"),
            conf === undefined ? h("span") : h("span", { class: "confidence" },
              h("span", { class: "conf", role: "meter", "aria-valuemin": 0, "aria-valuemax": 1, "aria-valuenow": conf,
                          "aria-label": `${label} confidence ${pct(conf)}` }, h("i", { style: `width:${pct(conf)}` })),
              ` ${pct(conf)}`)];
  }));
}

function candidates(d) {
  if (!d.candidates?.length) return null;
  return [h("h3", {}, "Candidates"), h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", { class: "num" }, "Score"), h("th", {}, "Why"))),
    h("tbody", {}, d.candidates.map((c) => h("tr", { class: c.model === d.model ? "picked" : null },
      h("td", {}, c.model), h("td", { class: "num" }, Number(c.score).toFixed(3)), h("td", {}, c.why || c.reason || "")))))];
}

function listOf(title, rows, line) {
  return rows?.length ? [h("h3", {}, title), h("ul", { class: "plain" }, rows.map((r) => h("li", {}, line(r))))] : null;
}

/** Server phases laid end to end, then the client's first and last token, on one scale. */
function timeline(d, timing) {
  const stepsMs = (d.steps || []).reduce((sum, s) => sum + (s.ms || 0), 0);
  const phases = [["classify", d.classifier_ms], ["select", d.select_ms], ["load", d.load_ms], ["steps", stepsMs]];
  const scale = Math.max(timing.lastMs || 0, d.total_ms || 0, 1);
  let at = 0;
  const segs = phases.map(([name, v]) => {
    const seg = h("span", { class: `seg ${name}`, title: `${name} ${ms(v)}`,
                            style: `left:${(100 * at) / scale}%;width:${(100 * (v || 0)) / scale}%` });
    at += v || 0;
    return seg;
  });
  const marks = [["first token", timing.firstMs], ["last token", timing.lastMs]].map(([name, v]) =>
    h("span", { class: "mark", title: `${name} ${ms(v)}`, style: `left:calc(${(100 * v) / scale}% - 2px)` }));
  const legend = [...phases, ["first token", timing.firstMs], ["last token", timing.lastMs]].map(([name, v]) =>
    h("li", {}, h("i", { class: name.includes("token") ? "token" : name }), `${name} ${ms(v)}`));
  return [h("h3", {}, "Timeline"),
          h("div", { class: "timeline", role: "img", "aria-label": legend.map((li) => li.textContent).join(", ") },
            segs, marks),
          h("ul", { class: "legend", "data-testid": "timeline-legend" }, legend)];
}

/** Replace `host`'s content with the drawing of `d` (the routing decision); `timing` {firstMs, lastMs}. */
export function showDecision(host, d, timing) {
  if (!d) {
    host.replaceChildren(h("p", { class: "hint" }, "This answer came without a routing decision."));
    return;
  }
  host.replaceChildren(...[
    signals(d),
    h("p", { class: "chosen" }, "Chosen ", h("strong", { "data-testid": "chosen-model" }, d.model || "—"),
      " · decided by ", h("span", { class: "badge", "data-testid": "decided-by" }, d.decided_by || "—")),
    d.reason ? h("p", { class: "reason" }, d.reason) : null,
    (d.degraded || []).map((why) => h("p", { class: "note", role: "note", "data-testid": "degraded" }, why)),
    candidates(d),
    listOf("Skipped", d.skipped, (s) => [h("strong", {}, s.model), `: ${s.why || s.reason || ""}`]),
    listOf("Fallbacks", d.fallbacks, (f) => [h("strong", {}, f.model), `: ${f.error || f.why || ""}`]),
    listOf("Steps", d.steps, (s) => [h("strong", {}, s.step), ` by ${s.model} in ${ms(s.ms)}`]),
    timeline(d, timing),
  ].flat(2).filter(Boolean));
}
