/**
 * The mergekit parity corpus: a manifest of (config, compute dtype, expected per-tensor sha256 of
 * mergekit's own output), recorded by scripts/numerics/record-mergekit-parity.py. Shared by the
 * parity test and `bench/numerics-speed.ts`; point `MERGELOOM_PARITY_MANIFEST` at another
 * manifest (e.g. a corpus of real configs with stand-in checkpoints) to check it the same way.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface ParityEntry {
  name: string;
  /** Config path relative to the repository root (the runs' working directory). */
  config: string;
  /** mergekit dtype name the config is merged in (`dtype:` replaced, `out_dtype:` dropped). */
  dtype: string;
  /** Expected-hash file relative to the repository root. */
  expected: string;
}

export interface ExpectedTensors {
  mergekit: string;
  torch: string;
  threads: number;
  tensors: Record<string, { dtype: string; shape: number[]; sha256: string }>;
}

export const DEFAULT_MANIFEST = "test/reference/mergekit-parity/manifest.json";

/** The torch 1.13 (Debian, no MKL) manifest, checked with `--numerics mergekit-torch1.13`. */
export const TORCH1_MANIFEST = "test/reference/mergekit-parity/manifest-torch1.13.json";

export function readManifest(root: string, manifest = process.env.MERGELOOM_PARITY_MANIFEST ?? DEFAULT_MANIFEST): ParityEntry[] {
  return readManifestFile(root, manifest).entries;
}

/** A manifest with the numerics mode it is checked in ("mergekit" unless it says otherwise). */
export function readManifestFile(root: string, manifest: string): { entries: ParityEntry[]; numerics: "mergekit" | "mergekit-torch1.13" } {
  const m = JSON.parse(readFileSync(join(root, manifest), "utf8")) as { entries: ParityEntry[]; numerics?: "mergekit" | "mergekit-torch1.13" };
  return { entries: m.entries, numerics: m.numerics ?? "mergekit" };
}

export function readExpected(root: string, e: ParityEntry): ExpectedTensors | undefined {
  const f = join(root, e.expected);
  return existsSync(f) ? (JSON.parse(readFileSync(f, "utf8")) as ExpectedTensors) : undefined;
}

/** The config as the recorder merged it: top-level dtype/out_dtype lines replaced by `dtype: <dtype>`. */
export function configWithDtype(text: string, dtype: string): string {
  const keep = text.split("\n").filter((l) => !l.startsWith("dtype:") && !l.startsWith("out_dtype:"));
  return `${keep.join("\n").trimEnd()}\ndtype: ${dtype}\n`;
}

/** name → sha256 of every tensor's bytes in a model directory's safetensors files. */
export function tensorHashes(dir: string): Map<string, { dtype: string; shape: number[]; sha256: string }> {
  const out = new Map<string, { dtype: string; shape: number[]; sha256: string }>();
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith(".safetensors")) continue;
    const raw = readFileSync(join(dir, f));
    const n = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    for (const [name, e] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const data = raw.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
      out.set(name, { dtype: e.dtype, shape: e.shape, sha256: createHash("sha256").update(data).digest("hex") });
    }
  }
  return out;
}
