#!/usr/bin/env node
// A worker-side scorer for tests: a known function of the candidate's weights — the sum of
// model.norm.weight (bf16 or f32) — printed as {"score": x}, with the GPU it was given.
// Usage: node norm-sum.mjs CHECKPOINT_DIR
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
const name = "model.norm.weight";
let file = join(dir, "model.safetensors");
const index = join(dir, "model.safetensors.index.json");
if (existsSync(index)) file = join(dir, JSON.parse(readFileSync(index, "utf8")).weight_map[name]);
const buf = readFileSync(file);
const n = Number(buf.readBigUInt64LE(0));
const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
const t = header[name];
const [start, end] = t.data_offsets;
const data = buf.subarray(8 + n + start, 8 + n + end);
let sum = 0;
if (t.dtype === "BF16") for (let i = 0; i < data.length; i += 2) sum += new Float32Array(new Uint32Array([data.readUInt16LE(i) << 16]).buffer)[0];
else if (t.dtype === "F32") for (let i = 0; i < data.length; i += 4) sum += data.readFloatLE(i);
else throw new Error(`unexpected dtype ${t.dtype}`);
console.log("scoring", dir); // log lines before the score are fine
console.log(JSON.stringify({ score: sum, gpu: process.env.CUDA_VISIBLE_DEVICES ?? null }));
