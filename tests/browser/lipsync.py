"""Whether the avatar's mouth follows a viseme timeline: the timeline as the server sent it (taken off
the wire by the test), the mouth as the browser drew it (its box on screen, sampled each frame)."""
from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from dataclasses import dataclass

# The mouth's box on screen ([width, height], half-pixel steps).
MOUTH_BOX = """() => { const r = document.getElementById('mouth').getBoundingClientRect();
  return [Math.round(r.width * 2) / 2, Math.round(r.height * 2) / 2]; }"""
# Whether the mouth's box is `want` now.
MOUTH_SHOWS = f"""(want) => JSON.stringify(({MOUTH_BOX})()) === JSON.stringify(want)"""
# Installed before the question is asked, so that no frame of the voice goes unseen however late this
# process gets to look: from the voice's `play` on, the mouth's box against its playhead, each frame while
# it plays (the page draws in its own frames: a drawing seen at one sample was made between the previous
# sample's time and this one's); window.__mouth once the voice has ended.
SAMPLE_MOUTH_FROM_PLAY = f"""() => {{
  const voice = document.getElementById('voice'), box = {MOUTH_BOX};
  const samples = [];
  const frame = () => {{
    if (!voice.paused && !voice.ended) samples.push([voice.currentTime, box()]);
    if (voice.ended) window.__mouth = {{samples, played: voice.currentTime, duration: voice.duration}};
    else requestAnimationFrame(frame);
  }};
  voice.addEventListener('play', () => requestAnimationFrame(frame), {{once: true}});
}}"""
SLACK_S = 0.02  # the playhead as the page read it may differ a little from the one read beside it


def timeline_in(content_type: str, body: str) -> list[dict]:
    """The viseme timeline of an answer: message.visemes of a whole one, a delta's of a streamed one."""
    if content_type.startswith("application/json"):
        return json.loads(body)["choices"][0]["message"].get("visemes") or []
    for line in body.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                if choice["delta"].get("visemes"):
                    return choice["delta"]["visemes"]
    return []


def _segment(timeline: list[dict], starts: list[float], t: float) -> int | None:
    """The index of the timeline's segment that holds time `t`, None in a gap or outside it."""
    i = bisect.bisect_right(starts, t) - 1
    return i if i >= 0 and t < timeline[i]["end"] else None


@dataclass
class Fit:
    """The mouth's boxes per viseme of the timeline, from samples whose frame lay inside one segment."""
    boxes: dict[str, Counter]

    @property
    def samples(self) -> int:
        return sum(sum(c.values()) for c in self.boxes.values())

    @property
    def agreement(self) -> float:
        """The share of samples that show their viseme's usual box (1.0: one box per viseme, always)."""
        return sum(c.most_common(1)[0][1] for c in self.boxes.values()) / max(self.samples, 1)

    @property
    def shapes(self) -> set[tuple]:
        """The distinct boxes the visemes are drawn with (their usual ones)."""
        return {tuple(c.most_common(1)[0][0]) for c in self.boxes.values()}


def fit(samples: list[list], timeline: list[dict]) -> Fit:
    """Group the sampled boxes by the timeline's viseme at the time each one was drawn."""
    timeline = sorted(timeline, key=lambda v: v["start"])
    starts = [v["start"] for v in timeline]
    boxes: dict[str, Counter] = defaultdict(Counter)
    for (t0, _), (t1, box) in zip(samples, samples[1:]):
        first, last = _segment(timeline, starts, t0 - SLACK_S), _segment(timeline, starts, t1 + SLACK_S)
        if first is not None and first == last:  # drawn within one segment, whichever frame it was
            boxes[timeline[first]["viseme"]][tuple(box)] += 1
    return Fit(dict(boxes))
