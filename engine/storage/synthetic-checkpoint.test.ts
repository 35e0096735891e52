import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { openCheckpoint } from "./checkpoint.js";
import { openByteSource } from "./open-byte-source.js";
import { fillSynthetic, openSyntheticCheckpoint, parseSyntheticUri } from "./synthetic-checkpoint.js";

describe("synthetic checkpoints", () => {
  test("llama-70b has Llama-3-70B's tensor count, shapes and bf16 size", async () => {
    const ck = await openCheckpoint("synthetic://llama-70b?seed=3");
    assert.equal(ck.tensors.size, 1 + 80 * 9 + 2);
    assert.deepEqual(ck.tensors.get("model.embed_tokens.weight")?.shape, [128256, 8192]);
    assert.deepEqual(ck.tensors.get("model.layers.79.self_attn.k_proj.weight")?.shape, [1024, 8192]);
    assert.deepEqual(ck.tensors.get("model.layers.0.mlp.down_proj.weight")?.shape, [8192, 28672]);
    let bytes = 0;
    for (const t of ck.tensors.values()) bytes += t.byteLength;
    // 70.55 B parameters × 2 bytes
    assert.equal(bytes, 2 * (2 * 128256 * 8192 + 80 * (2 * 8192 + 2 * 8192 * 8192 + 2 * 1024 * 8192 + 3 * 28672 * 8192) + 8192));
    assert.equal(ck.config?.num_hidden_layers, 80);
  });

  test("the layers parameter shortens the model and unknown parameters or presets are refused", () => {
    assert.equal(openSyntheticCheckpoint("synthetic://llama-70b?seed=1&layers=2").tensors.size, 1 + 2 * 9 + 2);
    assert.throws(() => parseSyntheticUri("synthetic://llama-71b?seed=1"), /unknown synthetic model.*llama-70b/);
    assert.throws(() => parseSyntheticUri("synthetic://llama-70b?sed=1"), /unknown parameter 'sed'/);
  });

  test("bytes depend only on position and seed, not on how a range is split", async () => {
    const whole = new Uint8Array(4096);
    fillSynthetic(whole, 1000, 2, false);
    const a = new Uint8Array(1000);
    const b = new Uint8Array(3096);
    fillSynthetic(a, 1000, 2, false);
    fillSynthetic(b, 1500, 2, false);
    assert.deepEqual(Buffer.concat([a, b]), Buffer.from(whole));
    const other = new Uint8Array(4096);
    fillSynthetic(other, 1000, 3, false);
    assert.notDeepEqual(Buffer.from(other), Buffer.from(whole));
  });

  test("two seeds differ by a small task vector and norm weights sit near 1.0", async () => {
    const uri0 = "synthetic://llama-tiny?seed=0";
    const uri1 = "synthetic://llama-tiny?seed=1";
    const ck = openSyntheticCheckpoint(uri0);
    const q = ck.tensors.get("model.layers.0.self_attn.q_proj.weight")!;
    const read = async (uri: string, off: number, n: number) => {
      const buf = await openByteSource(uri).read(off, n);
      const u = new Uint16Array(buf.buffer, buf.byteOffset, n / 2);
      return Float32Array.from(u, (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]);
    };
    const x0 = await read(uri0, q.offset, q.byteLength);
    const x1 = await read(uri1, q.offset, q.byteLength);
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < x0.length; i++) {
      diff += (x1[i] - x0[i]) ** 2;
      norm += x0[i] ** 2;
    }
    const rel = Math.sqrt(diff / norm);
    assert.ok(rel > 0.001 && rel < 0.05, `task vector should be small but non-zero: ${rel}`);
    const n = ck.tensors.get("model.norm.weight")!;
    const w = await read(uri0, n.offset, n.byteLength);
    for (const v of w) assert.ok(v > 0.1 && v < 2, `norm weight ${v}`);
  });
});
