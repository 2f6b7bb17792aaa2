// A tiny element builder: h("td", {class: "num"}, "12 ms"). Text goes in as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "style") el.style.cssText = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const ms = (v) => `${Number(v || 0).toFixed(v >= 100 ? 0 : 1)} ms`;
export const pct = (v) => `${Math.round((v || 0) * 100)}%`;
export const mb = (v) => `${Math.round(v || 0)} MB`;
