/**
 * Bounded fuzz of checkpoint reading, planning and merging (issue 9 acceptance): 240 seeded
 * mutations of a valid small checkpoint — bit flips anywhere, flips in tensor data only,
 * truncations, inserted bytes, renamed tensor keys — each planned and merged (linear with an
 * intact copy). Every case either merges, with an output equal to the intact merge except where
 * the mutated bytes change the mean (computed here independently, in fp32 as the method defines),
 * or fails with a typed one-line error and leaves no output or temporary directory; each in < 5 s.
 * A handful run through the real CLI process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { planMerge, runMergeJob } from "@mergeloom/engine/job";
import { EmbeddedDispatcher } from "@mergeloom/coordinator/dispatch";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { runCli } from "../harness/run-cli.js";
import { tinyLlamaTensors, writeFakeCheckpoint } from "../harness/synthetic-checkpoint.js";
import { readRawTensors, type RawTensor } from "../harness/rewrite-checkpoint.js";
import { mulberry32 } from "../harness/mulberry32.js";

const CASES = 240;
const CLI_CASES = 6;
const SEED = 20261203;

/** Seeded uniform [0, 1) stream, so every run makes the same data. */
const rng = mulberry32;

interface Mutation {
  kind: "flip" | "data-flip" | "truncate" | "insert" | "rename";
  bytes: Buffer;
  /** Only tensor data bytes changed (same length, header intact). */
  dataOnly: boolean;
}

function mutate(clean: Buffer, dataStart: number, r: () => number): Mutation {
  const pick = r();
  const at = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo));
  const b = Buffer.from(clean);
  if (pick < 0.3) {
    const i = at(0, b.length);
    b[i] ^= 1 << at(0, 8);
    return { kind: "flip", bytes: b, dataOnly: i >= dataStart };
  }
  if (pick < 0.55) {
    for (let k = at(1, 4); k > 0; k--) b[at(dataStart, b.length)] ^= 1 << at(0, 8);
    return { kind: "data-flip", bytes: b, dataOnly: true };
  }
  if (pick < 0.7) return { kind: "truncate", bytes: b.subarray(0, at(0, b.length)), dataOnly: false };
  if (pick < 0.85) {
    const i = at(0, b.length + 1);
    const ins = Buffer.from(Array.from({ length: at(1, 9) }, () => at(0, 256)));
    return { kind: "insert", bytes: Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]), dataOnly: false };
  }
  // Rename one tensor key: change one character of its name inside the header JSON.
  const n = Number(clean.readBigUInt64LE(0));
  const header = JSON.parse(clean.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const name = names[at(0, names.length)];
  const pos = at(0, name.length);
  const renamed = name.slice(0, pos) + (name[pos] === "x" ? "y" : "x") + name.slice(pos + 1);
  const json = clean
    .subarray(8, 8 + n)
    .toString("utf8")
    .replace(`"${name}"`, `"${renamed}"`);
  return { kind: "rename", bytes: Buffer.concat([clean.subarray(0, 8), Buffer.from(json, "utf8"), clean.subarray(8 + n)]), dataOnly: false };
}

const bf16ToF32 = (h: number) => new Float32Array(new Uint32Array([h << 16]).buffer)[0];
function f32ToBF16(v: number): number {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 0) >>> 16;
}

/** linear, weights 1 and 1, normalized: bf16(f32(f32(a + b) / 2)), element by element. */
function expectedMean(a: Buffer, b: Buffer): Array<number | "nan"> {
  const out: Array<number | "nan"> = [];
  for (let i = 0; i < a.length; i += 2) {
    const v = Math.fround(Math.fround(bf16ToF32(a.readUInt16LE(i)) + bf16ToF32(b.readUInt16LE(i))) / 2);
    out.push(Number.isNaN(v) ? "nan" : f32ToBF16(v));
  }
  return out;
}

let dir: string;
let clean: string;
let cleanBytes: Buffer;
let cleanTensors: RawTensor[];
let dataStart: number;
let dispatcher: EmbeddedDispatcher;
const registry = createDefaultRegistry();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-fuzz-"));
  clean = await writeFakeCheckpoint(join(dir, "clean"), tinyLlamaTensors(8, "BF16"), { seed: 5 });
  cleanBytes = await readFile(join(clean, "model.safetensors"));
  cleanTensors = await readRawTensors(join(clean, "model.safetensors"));
  dataStart = 8 + Number(cleanBytes.readBigUInt64LE(0));
  dispatcher = await EmbeddedDispatcher.start({ threads: 0 });
});
after(async () => {
  await dispatcher?.close();
  await rm(dir, { recursive: true, force: true });
});

async function writeCase(i: number, m: Mutation): Promise<{ model: string; cfg: string; yaml: string; parent: string; out: string }> {
  const model = join(dir, `case-${i}`);
  await mkdir(model);
  await writeFile(join(model, "model.safetensors"), m.bytes);
  await copyFile(join(clean, "config.json"), join(model, "config.json"));
  const yaml = `merge_method: linear\nmodels:\n  - model: ${model}\n    parameters: { weight: 1 }\n  - model: ${clean}\n    parameters: { weight: 1 }\n`;
  const cfg = join(dir, `case-${i}.yml`);
  await writeFile(cfg, yaml);
  const parent = join(dir, `out-${i}`);
  await mkdir(parent);
  return { model, cfg, yaml, parent, out: join(parent, "merged") };
}

/** The merged output equals the intact merge except where the mutation changed the mean. */
async function checkOutput(out: string, m: Mutation, caseLabel: string): Promise<void> {
  const got = await readRawTensors(join(out, "model.safetensors"));
  assert.deepEqual(got.map((t) => t.name).sort(), cleanTensors.map((t) => t.name).sort(), caseLabel);
  const mutatedTensors = m.dataOnly ? await readRawTensorsFrom(m.bytes) : cleanTensors;
  for (const t of cleanTensors) {
    const g = got.find((x) => x.name === t.name)!;
    const mt = mutatedTensors.find((x) => x.name === t.name)!;
    const want = expectedMean(mt.data, t.data);
    for (let k = 0; k < want.length; k++) {
      const v = g.data.readUInt16LE(2 * k);
      if (want[k] === "nan") assert.ok((v & 0x7f80) === 0x7f80 && (v & 0x7f) !== 0, `${caseLabel}: ${t.name}[${k}] must be NaN`);
      else assert.equal(v, want[k], `${caseLabel}: ${t.name}[${k}]`);
      // Unchanged input bytes → the intact output (the mean of a value with itself is the value).
      if (mt.data.readUInt16LE(2 * k) === t.data.readUInt16LE(2 * k) && want[k] !== "nan") assert.equal(v, t.data.readUInt16LE(2 * k));
    }
  }
}

async function readRawTensorsFrom(bytes: Buffer): Promise<RawTensor[]> {
  const p = join(dir, "scratch.safetensors");
  await writeFile(p, bytes);
  return readRawTensors(p);
}

async function assertNothingLeft(parent: string, label: string): Promise<void> {
  assert.deepEqual(await readdir(parent), [], `${label}: no output or temporary directory may be left`);
}

describe("seeded mutations of a valid checkpoint merge correctly or fail cleanly", () => {
  test(`${CASES} mutations through plan and merge (in-process)`, async () => {
    const r = rng(SEED);
    const tally: Record<string, { ok: number; failed: number }> = {};
    for (let i = 0; i < CASES; i++) {
      const m = mutate(cleanBytes, dataStart, r);
      const c = await writeCase(i, m);
      const label = `case ${i} (${m.kind})`;
      const t0 = performance.now();
      let planError: unknown;
      try {
        await planMerge(parseMergeConfig(c.yaml, c.cfg, registry));
      } catch (err) {
        planError = err;
      }
      let mergeError: unknown;
      try {
        await runMergeJob(parseMergeConfig(c.yaml, c.cfg, registry), dispatcher, { out: c.out, seed: 0, maxShardBytes: 1e9 });
      } catch (err) {
        mergeError = err;
      }
      const ms = performance.now() - t0;
      assert.ok(ms < 5000, `${label} took ${Math.round(ms)} ms`);
      tally[m.kind] ??= { ok: 0, failed: 0 };
      if (mergeError === undefined) {
        assert.equal(planError, undefined, `${label}: plan failed but merge succeeded`);
        await checkOutput(c.out, m, label);
        tally[m.kind].ok++;
      } else {
        for (const e of [planError, mergeError]) {
          if (e === undefined) continue; // a data flip may plan (headers only) and fail when merging
          assert.ok(e instanceof MergeloomError, `${label}: untyped error ${String((e as Error)?.stack ?? e)}`);
          assert.ok(!e.message.includes("\n"), `${label}: error spans lines: ${e.message}`);
        }
        assert.ok(mergeError instanceof MergeloomError, `${label}: untyped error ${String(mergeError)}`);
        await assertNothingLeft(c.parent, label);
        tally[m.kind].failed++;
      }
      if (m.dataOnly) assert.equal(mergeError, undefined, `${label}: a data-only mutation must merge: ${String(mergeError)}`);
      await rm(join(dir, `case-${i}`), { recursive: true, force: true });
    }
    // Every kind of mutation was exercised, and both outcomes occurred.
    assert.deepEqual(Object.keys(tally).sort(), ["data-flip", "flip", "insert", "rename", "truncate"]);
    assert.ok(Object.values(tally).some((t) => t.ok > 0) && Object.values(tally).some((t) => t.failed > 0), JSON.stringify(tally));
  });

  test(`${CLI_CASES} structural mutations through the real CLI fail with one line, non-zero exit, no stack trace, nothing left`, async () => {
    const r = rng(SEED + 1);
    let done = 0;
    for (let i = 0; done < CLI_CASES && i < 200; i++) {
      const m = mutate(cleanBytes, dataStart, r);
      if (m.dataOnly || m.kind === "flip") continue; // structural ones: truncations, insertions, renames
      const c = await writeCase(10_000 + i, m);
      const t0 = performance.now();
      const res = await runCli(["merge", c.cfg, "-o", c.out, "--json"]);
      assert.ok(performance.now() - t0 < 5000 + 3000, "CLI case within 5 s plus process start");
      if (res.code === 0) {
        await checkOutput(c.out, m, `cli case ${i}`);
      } else {
        const lines = res.stderr.trim().split("\n");
        assert.equal(lines.length, 1, res.stderr);
        assert.match(lines[0], /^mergeloom: /);
        assert.doesNotMatch(res.stderr, /\n\s+at /);
        await assertNothingLeft(c.parent, `cli case ${i}`);
      }
      done++;
    }
    assert.equal(done, CLI_CASES);
  });
});
