// The models panel: the router's deep health report, refreshed while the page is visible. Memory is
// drawn against the budget (measured filled, declared dashed); load and unload need the admin key.
// When the page's API key is a tenant's, what that key used in the last 24 h and its budget left come first.

import { admin, deepHealth, ownUsage } from "./api.js";
import { h, mb } from "./dom.js";

const REFRESH_MS = 5000;

function bar(measured, declared, budget, label) {
  const w = (v) => `${Math.min(100, (100 * (v || 0)) / Math.max(budget || 0, 1))}%`;
  return h("div", { class: "membar", role: "img", "aria-label": label },
    h("i", { style: `width:${w(measured)}` }), declared ? h("b", { style: `width:${w(declared)}` }) : null);
}

function counts(row, recovery) {
  const parts = [];
  for (const key of ["loads", "evictions"]) if (row[key] !== undefined) parts.push(`${row[key]} ${key}`);
  if (recovery) parts.push(`${recovery.deaths} deaths, ${recovery.state}`);
  if (row.cooling_s) parts.push(`cooling ${row.cooling_s} s`);
  return parts.join(" · ");
}

function actions(name, row, key, refresh) {
  if (row.pinned) return h("td");
  const act = (action) => h("button", { type: "button", "aria-label": `${action} ${name}`, onclick: async (e) => {
    e.target.disabled = true;
    try { await admin(name, action, key); } catch (err) { alert(`${action} ${name}: ${err.message}`); }
    refresh();
  } }, action);
  return h("td", { class: "actions" }, row.status === "loaded" ? act("unload") : act("load"));
}

function table(report, key, refresh) {
  const budget = report.memory?.budget_mb;
  const rows = Object.entries(report.models || {}).sort(([a], [b]) => a.localeCompare(b));
  const events = Object.fromEntries(rows.map(([name, row]) => [name, counts(row, report.recoveries?.[name])]));
  const withEvents = Object.values(events).some(Boolean);  // a column only when something happened
  return h("table", { class: "models-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "State"), h("th", {}, "Memory"),
      withEvents ? h("th", {}, "Events") : null, key ? h("th", {}, "Action") : null)),
    h("tbody", {}, rows.map(([name, row]) => {
      const state = row.recovering ? "recovering" : row.status;
      const memory = row.measured_mb ? `${mb(row.measured_mb)} measured of ${mb(row.declared_mb)} declared`
                                     : `${mb(row.declared_mb)} declared`;
      return h("tr", { "data-model": name },
        h("td", {}, name, row.pinned ? h("small", {}, " (pinned)") : null),
        h("td", {}, h("span", { class: `badge ${state}`, "data-testid": "state" }, state),
          row.inflight ? h("small", {}, ` ${row.inflight} running`) : null),
        h("td", { "data-testid": "memory" }, bar(row.measured_mb, row.declared_mb, budget, memory),
          h("small", {}, memory)),
        withEvents ? h("td", {}, h("small", {}, events[name])) : null,
        key ? actions(name, row, key, refresh) : null);
    })));
}

function summary(report) {
  const m = report.memory || {};
  const line = (used, budget, what) => [h("p", {}, `${what}: ${mb(used)} used of ${mb(budget)} budget`),
    bar(used, 0, budget, `${what} ${mb(used)} of ${mb(budget)}`)];
  return [h("p", {}, "Router ", h("span", { class: `badge ${report.ready ? "loaded" : "stuck"}` },
                                   report.ready ? "ready" : "not ready")),
          line(m.used_mb, m.budget_mb, "Host memory"),
          m.gpu_budget_mb ? line(m.gpu_used_mb, m.gpu_budget_mb, "GPU memory") : null];
}

function usage(own) {
  if (!own) return null;
  const sum = (count) => own.data.reduce((total, row) => total + row[count], 0);
  const b = own.budget;
  const limits = [own.limits.rpm && `${own.limits.rpm} requests/min`, own.limits.tpm && `${own.limits.tpm} tokens/min`]
    .filter(Boolean).join(" · ");
  return h("div", { class: "own-usage", "data-testid": "own-usage" },
    h("p", {}, "Your key ", h("b", {}, own.name), ", last 24 h: ",
      h("span", { "data-testid": "own-requests" }, `${sum("requests")} request${sum("requests") === 1 ? "" : "s"}`),
      `, ${sum("prompt_tokens")} tokens in, ${sum("completion_tokens")} out, ${sum("cache_hits")} from the cache,`
      + ` ${sum("errors")} errors`),
    b ? [h("p", { "data-testid": "own-budget" }, `Budget: ${b.spent} of ${b.tokens} tokens this ${b.period}, `
                                                + `${b.left} left`),
         bar(b.spent, 0, b.tokens, `budget ${b.spent} of ${b.tokens} tokens`)] : null,
    limits ? h("p", {}, h("small", {}, `Limits: ${limits}`)) : null);
}

/** Keep `host` showing the report; returns a function that refreshes it now. */
export function watchModels(host, keyInput) {
  let timer = null;
  const refresh = async () => {
    clearTimeout(timer);
    // The key's usage shows whether or not the health report answers (and the other way round).
    const [report, own] = await Promise.all([deepHealth().catch((err) => err), ownUsage().catch(() => null)]);
    const health = report instanceof Error
      ? [h("p", { class: "hint" }, `The health report is not available: ${report.message}`)]
      : [...summary(report), table(report, keyInput.value.trim(), refresh)];
    host.replaceChildren(...[usage(own), ...health].flat(2).filter(Boolean));
    if (document.visibilityState === "visible") timer = setTimeout(refresh, REFRESH_MS);
  };
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && refresh());
  keyInput.addEventListener("change", refresh);
  refresh();
  return refresh;
}
