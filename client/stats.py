"""Turn the router's Prometheus metrics (tmr_*) into a short, readable report."""
from __future__ import annotations

import re
from collections import defaultdict

_LINE = re.compile(r'^(tmr_[a-z_]+?)(_bucket|_sum|_count)?(?:\{([^}]*)\})? ([0-9.eE+-]+)$')


def parse(text: str) -> dict[str, list[tuple[dict[str, str], str, float]]]:
    out: dict[str, list] = defaultdict(list)
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            out[m.group(1)].append((labels, m.group(2) or "", float(m.group(4))))
    return out


def format_metrics(text: str) -> str:
    m = parse(text)
    lines = ["routing decisions (use case -> model):"]
    for labels, _, v in sorted(m.get("tmr_routing_decisions_total", []), key=lambda t: -t[2]):
        lines.append(f"  {labels.get('use_case', '?'):<11} -> {labels.get('model', '?'):<32} {v:>8.0f}")
    for title, name, key in (("fallbacks (model that failed)", "tmr_fallbacks_total", "model"),
                             ("loads", "tmr_model_loads_total", "model"),
                             ("unloads (model, reason)", "tmr_model_evictions_total", "model")):
        rows = m.get(name, [])
        lines.append(f"{title}:" + ("" if rows else " none"))
        for labels, _, v in rows:
            extra = labels.get("result") or labels.get("reason") or ""
            lines.append(f"  {labels.get(key, '?'):<32} {extra:<10} {v:>6.0f}")
    for title, name in (("model load time", "tmr_model_load_duration_seconds"),
                        ("classifier latency", "tmr_classifier_latency_seconds")):
        sums = defaultdict(dict)
        for labels, part, v in m.get(name, []):
            if part in ("_sum", "_count"):
                sums[labels.get("model", "all")][part] = v
        for model, d in sums.items():
            if d.get("_count"):
                lines.append(f"{title} ({model}): mean {1000 * d['_sum'] / d['_count']:.1f} ms over {d['_count']:.0f}")
    for labels, _, v in m.get("tmr_memory_used_mb", []):
        lines.append(f"memory held by routed models ({labels.get('kind')}): {v:.0f} MB")
    return "\n".join(lines)
