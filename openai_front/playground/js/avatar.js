// The avatar's face: its mouth takes the shape of the viseme under the audio's playhead (the Oculus
// 15-viseme set the router returns). An answer without a timeline moves the mouth with the loudness.

import { base64Bytes, loudness } from "./media.js";

// Per viseme: half-width, how far the upper lip rises, how far the lower lip drops (SVG units).
const SHAPES = {
  sil: [22, 1, 2], PP: [20, 0, 1], FF: [22, 2, 6], TH: [22, 3, 8], DD: [22, 3, 10], kk: [22, 4, 12],
  CH: [16, 5, 12], SS: [24, 2, 5], nn: [22, 3, 8], RR: [16, 4, 11], aa: [24, 7, 22], E: [26, 4, 13],
  I: [26, 3, 9], O: [14, 9, 18], U: [11, 6, 11],
};
const MOUTH_X = 100, MOUTH_Y = 146;

let mouth = null;

/** Draw the face into `host`. */
export async function mountAvatar(host) {
  const resp = await fetch("/playground/avatar.svg");
  host.innerHTML = await resp.text();
  mouth = host.querySelector("#mouth");
  show("sil");
}

function show(viseme) {
  if (!mouth || mouth.dataset.viseme === viseme) return;
  const [w, up, down] = SHAPES[viseme] || SHAPES.sil;
  const x0 = MOUTH_X - w, x1 = MOUTH_X + w, y = MOUTH_Y;
  mouth.setAttribute("d", `M${x0} ${y} Q${MOUTH_X} ${y - 2 * up} ${x1} ${y} Q${MOUTH_X} ${y + 2 * down} ${x0} ${y} Z`);
  mouth.dataset.viseme = viseme;
}

/** A timeline from loudness alone, for speech that came without one: louder opens wider. */
function fromLoudness(levels, step = 0.04) {
  const peak = Math.max(...levels, 1e-6);
  return levels.map((level, i) => {
    const r = level / peak;
    const viseme = r < 0.12 ? "sil" : r < 0.35 ? "E" : r < 0.6 ? "O" : "aa";
    return { start: i * step, end: (i + 1) * step, viseme };
  });
}

/** Play `audio` (base64 WAV) on `player` with the mouth following `visemes` ([{start, end, viseme}]). */
export async function speak(player, audio, visemes) {
  const timeline = visemes?.length ? visemes : fromLoudness(loudness(base64Bytes(audio)));
  player.src = `data:audio/wav;base64,${audio}`;
  player.hidden = false;
  let at = 0;
  const frame = () => {
    const t = player.currentTime;
    if (at >= timeline.length || timeline[at].start > t) at = 0;  // a seek backwards starts the search over
    while (at < timeline.length - 1 && timeline[at].end <= t) at++;
    show(player.paused || player.ended ? "sil" : timeline[at]?.viseme || "sil");
    if (!player.paused && !player.ended) requestAnimationFrame(frame);
  };
  player.onplay = () => requestAnimationFrame(frame);
  player.onpause = player.onended = () => show("sil");
  try {
    await player.play();
  } catch (err) {  // the browser wants a click first: the controls are there for it
    console.warn("speech did not start by itself:", err.message);
  }
}
