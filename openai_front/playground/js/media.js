// Attachments as OpenAI content parts, microphone recordings as WAV, and WAV reading for lip-sync.

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** The content part for a file: image_url (data URL), input_audio (base64) or video_url (data URL). */
export async function contentPart(file) {
  const url = await dataUrl(file);
  const kind = (file.type || "").split("/")[0];
  if (kind === "image") return { type: "image_url", image_url: { url } };
  if (kind === "audio") {
    const format = (file.name.split(".").pop() || "wav").toLowerCase();
    return { type: "input_audio", input_audio: { data: url.slice(url.indexOf(",") + 1), format } };
  }
  if (kind === "video") return { type: "video_url", video_url: { url } };
  throw new Error(`${file.name}: ${file.type || "an unknown type"} is not an image, audio or video file`);
}

export const canRecord = () => Boolean(navigator.mediaDevices?.getUserMedia && window.MediaRecorder);

/** Records the microphone until `stop()`, which resolves to a mono 16 kHz WAV File. */
export async function record() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream);
  const parts = [];
  recorder.ondataavailable = (e) => parts.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  return {
    async stop() {
      recorder.stop();
      await stopped;
      stream.getTracks().forEach((t) => t.stop());
      const encoded = await new Blob(parts, { type: recorder.mimeType }).arrayBuffer();
      // Decoded here so that the server gets plain WAV whatever the browser records (webm, ogg, mp4).
      const ctx = new OfflineAudioContext(1, 1, 16000);
      const audio = await ctx.decodeAudioData(encoded);
      return new File([wav(await resample(audio, 16000))], "recording.wav", { type: "audio/wav" });
    },
  };
}

async function resample(audio, rate) {
  const ctx = new OfflineAudioContext(1, Math.ceil(audio.duration * rate), rate);
  const src = ctx.createBufferSource();
  src.buffer = audio;
  src.connect(ctx.destination);
  src.start();
  return (await ctx.startRendering()).getChannelData(0);
}

function wav(samples, rate = 16000) {
  const buf = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at, s) => [...s].forEach((c, i) => buf.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); buf.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVEfmt ");
  buf.setUint32(16, 16, true); buf.setUint16(20, 1, true); buf.setUint16(22, 1, true);
  buf.setUint32(24, rate, true); buf.setUint32(28, rate * 2, true); buf.setUint16(32, 2, true);
  buf.setUint16(34, 16, true); text(36, "data"); buf.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => buf.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return buf.buffer;
}

export function base64Bytes(b64) {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** Loudness per `step` seconds of a 16-bit PCM WAV, 0..1; [] for any other encoding. */
export function loudness(bytes, step = 0.04) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 12, fmt = null;
  while (at + 8 <= view.byteLength) {
    const id = String.fromCharCode(...bytes.subarray(at, at + 4)), size = view.getUint32(at + 4, true);
    if (id === "fmt ") fmt = { channels: view.getUint16(at + 10, true), rate: view.getUint32(at + 12, true),
                               bits: view.getUint16(at + 22, true) };
    if (id === "data" && fmt?.bits === 16) {
      const frames = Math.floor(Math.min(size, view.byteLength - at - 8) / (2 * fmt.channels));
      const window = Math.max(1, Math.round(fmt.rate * step)), out = [];
      for (let f = 0; f < frames; f += window) {
        let sum = 0, n = 0;
        for (let i = f; i < Math.min(f + window, frames); i++, n++) {
          const s = view.getInt16(at + 8 + i * 2 * fmt.channels, true) / 0x8000;
          sum += s * s;
        }
        out.push(Math.sqrt(sum / n));
      }
      return out;
    }
    at += 8 + size + (size % 2);
  }
  return [];
}
