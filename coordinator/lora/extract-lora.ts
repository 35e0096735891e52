/**
 * `mergeloom lora extract`: mergekit-extract-lora's job. Each 2-D weight's delta (fine-tuned −
 * base) becomes a rank-r LoRA pair by truncated SVD, split as mergekit does (A = √S·Vᵀ,
 * B = U·√S; lora_alpha = r, so the scale is 1); embeddings, lm_head and modules without a 2-D
 * weight (norms) are saved whole as modules_to_save. The delta is streamed in row chunks through
 * a randomized SVD, and its error is measured: ‖Δ − B·A‖_F / ‖Δ‖_F per tensor, with A and B as
 * stored (rounded to the model's dtype).
 */
import { existsSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { DTYPE_BYTES, isFloatDType, type DType } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import { CheckpointError } from "@mergeloom/engine/errors";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import { TensorIO } from "@mergeloom/engine/driver";
import { openCheckpoint, type CheckpointTensor } from "@mergeloom/engine/storage";
import { decodeToF32, encodeFromF32 } from "@mergeloom/engine/tensor";
import { resolveModelReference } from "@mergeloom/engine/plan";
import { isEmbeddingTensor } from "@mergeloom/engine/tokenizer";
import { randomizedSvd } from "./randomized-svd.js";

export interface ExtractOptions {
  finetuned: string;
  base: string;
  out: string;
  rank: number;
  /** Module names (last component) saved at full rank. */
  saveModules?: string[];
  includeRegexes?: string[];
  excludeRegexes?: string[];
  /** Singular values at or below this are dropped (mergekit's --sv-epsilon). */
  svEpsilon?: number;
  /** mergekit's --no-distribute-scale: A = S·Vᵀ, B = U. */
  distributeScale?: boolean;
  skipUndecomposable?: boolean;
  /** Replace an existing output directory. */
  overwrite?: boolean;
  powerIterations?: number;
  oversample?: number;
  seed?: number;
  onTensor?: (r: ExtractedTensor) => void;
  onWarning?: (message: string) => void;
}

export interface ExtractedTensor {
  name: string;
  kind: "lora" | "full";
  rank?: number;
  /** ‖Δ − B·A‖_F / ‖Δ‖_F (0 when Δ is 0). */
  relError?: number;
  deltaNorm?: number;
  errorNorm?: number;
}

export interface ExtractReport {
  tensors: ExtractedTensor[];
  /** √(Σ‖Δ − B·A‖²) / √(Σ‖Δ‖²) over the LoRA tensors. */
  relError: number;
  maxRank: number;
}

interface OutTensor {
  key: string;
  dtype: DType;
  shape: number[];
  bytes?: Uint8Array;
  /** Copied from a checkpoint when written. */
  copy?: CheckpointTensor;
}

function moduleOf(name: string): string {
  return name.replace(/\.(weight|bias)$/, "");
}
function lastOf(module: string): string {
  return module.slice(module.lastIndexOf(".") + 1);
}

export async function extractLora(opts: ExtractOptions): Promise<ExtractReport> {
  if (!Number.isInteger(opts.rank) || opts.rank < 1) throw new MergeloomError("USAGE", `lora extract: rank must be a positive integer, got ${opts.rank}`);
  if (existsSync(opts.out) && !opts.overwrite) {
    throw new MergeloomError("OUTPUT_EXISTS", `lora extract ${opts.out}: the output already exists; choose another -o or pass --overwrite`);
  }
  const [ft, base] = await Promise.all([openCheckpoint(resolveModelReference(opts.finetuned)), openCheckpoint(resolveModelReference(opts.base))]);
  const io = new TensorIO();
  const warn = opts.onWarning ?? (() => {});
  const include = (opts.includeRegexes ?? []).map((r) => new RegExp(r));
  const exclude = (opts.excludeRegexes ?? []).map((r) => new RegExp(r));
  const modulesToSave = [...(opts.saveModules ?? [])];
  const saveKey = (k: string) => {
    if (!modulesToSave.includes(k)) modulesToSave.push(k);
  };
  const out: OutTensor[] = [];
  const report: ExtractedTensor[] = [];
  const ranks = new Map<string, number>();
  const twoD = new Set([...ft.tensors.values()].filter((t) => t.shape.length === 2 && t.name.endsWith(".weight")).map((t) => moduleOf(t.name)));
  try {
    for (const t of ft.tensors.values()) {
      if (!isFloatDType(t.dtype)) continue;
      const module = moduleOf(t.name);
      const key = lastOf(module);
      const excluded = exclude.some((r) => r.test(module));
      const full = () => {
        saveKey(key);
        out.push({ key: `base_model.model.${t.name}`, dtype: t.dtype, shape: t.shape, copy: t });
        const r: ExtractedTensor = { name: t.name, kind: "full" };
        report.push(r);
        opts.onTensor?.(r);
      };
      if (modulesToSave.includes(key) || modulesToSave.includes(module)) {
        full();
        continue;
      }
      if (isEmbeddingTensor(t.name) && !excluded) {
        // mergekit without --embed-lora: embeddings go to modules_to_save at full rank.
        full();
        continue;
      }
      if (!twoD.has(module)) {
        if (excluded) continue;
        if (opts.skipUndecomposable) {
          warn(`${t.name}: not a linear layer; skipped (--skip-undecomposable)`);
          continue;
        }
        full();
        continue;
      }
      if (t.name.endsWith(".bias")) {
        warn(`${t.name}: the bias of a LoRA layer is not carried by a LoRA adapter; the base model's bias stays`);
        continue;
      }
      if ((include.length && !include.some((r) => r.test(module))) || excluded) continue;
      const b = base.tensors.get(t.name);
      if (!b)
        throw new CheckpointError(opts.base, `has no tensor '${t.name}', which '${opts.finetuned}' has; extract against the model it was fine-tuned from`, {
          code: "CHECKPOINT_MISSING",
        });
      if (b.shape.join("x") !== t.shape.join("x")) {
        throw new CheckpointError(opts.base, `tensor '${t.name}' has shape [${b.shape}] but the fine-tuned model's is [${t.shape}]`, {
          code: "SHAPE_MISMATCH",
        });
      }
      const r = await extractOne(io, t, b, module, opts);
      out.push(r.a, r.b);
      ranks.set(module, r.rank);
      report.push(r.report);
      opts.onTensor?.(r.report);
    }
    const maxRank = Math.max(0, ...ranks.values());
    const differ = Object.fromEntries([...ranks].filter(([, v]) => v !== maxRank));
    const config = {
      base_model_name_or_path: opts.base,
      peft_type: "LORA",
      use_rslora: false,
      target_modules: [...new Set([...ranks.keys()].map(lastOf))].sort(),
      modules_to_save: modulesToSave,
      task_type: "CAUSAL_LM",
      r: maxRank,
      lora_alpha: maxRank,
      rank_pattern: differ,
      alpha_pattern: differ,
      lora_dropout: 0.0,
      fan_in_fan_out: false,
      inference_mode: true,
    };
    await writeAdapter(resolve(opts.out), out, config, io);
    let err2 = 0;
    let d2 = 0;
    for (const t of report) {
      if (t.kind !== "lora") continue;
      err2 += t.errorNorm! ** 2;
      d2 += t.deltaNorm! ** 2;
    }
    return { tensors: report, relError: d2 > 0 ? Math.sqrt(err2 / d2) : 0, maxRank };
  } finally {
    io.close();
  }
}

async function readRows(io: TensorIO, t: CheckpointTensor, r0: number, r1: number): Promise<Float32Array> {
  const cols = t.shape[1];
  const esz = DTYPE_BYTES[t.dtype];
  const buf = new Uint8Array((r1 - r0) * cols * esz);
  await io.read(t.uri, t.offset + r0 * cols * esz, buf.byteLength, buf);
  return decodeToF32(buf, t.dtype, new Float32Array((r1 - r0) * cols));
}

async function extractOne(io: TensorIO, ft: CheckpointTensor, base: CheckpointTensor, module: string, opts: ExtractOptions) {
  const [rows, cols] = ft.shape;
  const delta = async (r0: number, r1: number): Promise<Float64Array> => {
    const [a, b] = await Promise.all([readRows(io, ft, r0, r1), readRows(io, base, r0, r1)]);
    const d = new Float64Array(a.length);
    for (let i = 0; i < a.length; i++) d[i] = a[i] - b[i];
    return d;
  };
  const svd = await randomizedSvd(delta, rows, cols, opts.rank, {
    powerIterations: opts.powerIterations ?? 2,
    oversample: opts.oversample ?? 10,
    seed: opts.seed ?? 0,
  });
  let rank = svd.rank;
  if ((opts.svEpsilon ?? 0) > 0) rank = Math.min(rank, svd.s.filter((x) => x > opts.svEpsilon!).length);
  const distribute = opts.distributeScale ?? true;
  const aVals = new Float32Array(rank * cols);
  const bVals = new Float32Array(rows * rank);
  for (let t = 0; t < rank; t++) {
    const sa = distribute ? Math.sqrt(svd.s[t]) : svd.s[t];
    const sb = distribute ? Math.sqrt(svd.s[t]) : 1;
    for (let c = 0; c < cols; c++) aVals[t * cols + c] = sa * svd.vt[t * cols + c];
    for (let i = 0; i < rows; i++) bVals[i * rank + t] = svd.u[i * svd.rank + t] * sb;
  }
  // Stored in the model's dtype (mergekit casts A and B back to it); the error uses the stored values.
  const aBytes = encodeFromF32(aVals, ft.dtype);
  const bBytes = encodeFromF32(bVals, ft.dtype);
  const aq = decodeToF32(aBytes, ft.dtype);
  const bq = decodeToF32(bBytes, ft.dtype);
  let err2 = 0;
  let d2 = 0;
  const chunk = Math.max(1, Math.floor((4 << 20) / cols));
  const row = new Float64Array(cols);
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const r1 = Math.min(rows, r0 + chunk);
    const d = await delta(r0, r1);
    for (let i = r0; i < r1; i++) {
      row.fill(0);
      for (let t = 0; t < rank; t++) {
        const bv = bq[i * rank + t];
        if (bv === 0) continue;
        for (let c = 0; c < cols; c++) row[c] += bv * aq[t * cols + c];
      }
      const o = (i - r0) * cols;
      for (let c = 0; c < cols; c++) {
        err2 += (d[o + c] - row[c]) ** 2;
        d2 += d[o + c] ** 2;
      }
    }
  }
  const P = `base_model.model.${module}`;
  return {
    rank,
    a: { key: `${P}.lora_A.weight`, dtype: ft.dtype, shape: [rank, cols], bytes: aBytes } as OutTensor,
    b: { key: `${P}.lora_B.weight`, dtype: ft.dtype, shape: [rows, rank], bytes: bBytes } as OutTensor,
    report: { name: ft.name, kind: "lora" as const, rank, relError: d2 > 0 ? Math.sqrt(err2 / d2) : 0, deltaNorm: Math.sqrt(d2), errorNorm: Math.sqrt(err2) },
  };
}

/** Writes adapter_model.safetensors (full modules copied in 64 MB pieces) and adapter_config.json into a temporary directory, then renames it into place. */
async function writeAdapter(dir: string, tensors: readonly OutTensor[], config: Record<string, unknown>, io: TensorIO): Promise<void> {
  const tmp = `${dir}.mergeloom-tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const { bytes } = buildSafetensorsHeader(tensors.map((t) => ({ name: t.key, dtype: t.dtype, shape: t.shape })));
    const file = join(tmp, "adapter_model.safetensors");
    await writeFile(file, bytes);
    let pos = bytes.byteLength;
    for (const t of tensors) {
      if (t.bytes) {
        io.write(file, pos, t.bytes);
        pos += t.bytes.byteLength;
        continue;
      }
      const src = t.copy!;
      const piece = 64 << 20;
      for (let off = 0; off < src.byteLength; off += piece) {
        const n = Math.min(piece, src.byteLength - off);
        const buf = new Uint8Array(n);
        await io.read(src.uri, src.offset + off, n, buf);
        io.write(file, pos, buf);
        pos += n;
      }
    }
    await writeFile(join(tmp, "adapter_config.json"), JSON.stringify(config, null, 2) + "\n");
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
