/**
 * Values recorded from torch by scripts/numerics/torch-reference.py (one file per torch build in
 * test/reference/torch/), for the unit tests of the torch-rounding primitives and the sort order.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { TORCH1, TORCH2, type TorchProfile } from "./torch-float.js";

export interface TorchReference {
  file: string;
  torch: string;
  profile: TorchProfile;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
}

// engine/numerics/ (tsx) or engine/dist/numerics/ (compiled): the recordings live in the repository's test/.
const DIR = new URL(import.meta.url.includes("/dist/") ? "../../../test/reference/torch/" : "../../test/reference/torch/", import.meta.url);

/** Every recorded torch build (fails if none is there: run the script). */
export function torchReferences(): TorchReference[] {
  const files = readdirSync(fileURLToPath(DIR))
    .filter((f) => f.endsWith(".json"))
    .sort();
  if (!files.length) throw new Error(`no torch reference in ${fileURLToPath(DIR)}; run scripts/numerics/torch-reference.py`);
  return files.map((file) => {
    const data = JSON.parse(readFileSync(fileURLToPath(new URL(file, DIR)), "utf8"));
    return { file, torch: data.torch, profile: String(data.torch).startsWith("1.") ? TORCH1 : TORCH2, data };
  });
}

/** base64 little-endian float32 → values. */
export function f32s(b64: string): Float32Array {
  const b = Buffer.from(b64, "base64");
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** keys[j] = (h(j) mod d) / 4 with the script's 32-bit integer hash. */
export function hashKeys(n: number, seed: number, d: number): Float32Array {
  const k = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let h = Math.imul((j ^ seed) >>> 0, 0x9e3779b1) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = Math.imul(h, 0x85ebca77) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    k[j] = (h % d) * 0.25;
  }
  return k;
}
