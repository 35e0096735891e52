/**
 * A minimal protobuf encoder for the subset of onnx.proto (ModelProto and what it contains) that
 * generated evaluation graphs need. Field numbers follow onnx/onnx.proto; repeated scalars are
 * written unpacked, which proto2 parsers (onnx.proto is proto2) read by default.
 */

export const TensorType = { FLOAT: 1, INT64: 7, BOOL: 9 } as const;
export type TensorElemType = (typeof TensorType)[keyof typeof TensorType];

export type AttrValue = { f: number } | { i: number } | { ints: readonly number[] } | { t: TensorSpec };

export interface TensorSpec {
  name?: string;
  type: TensorElemType;
  dims: readonly number[];
  /** Little-endian element bytes (raw_data). */
  raw: Uint8Array;
}

export interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  attrs?: Record<string, AttrValue>;
}

export interface ValueInfoSpec {
  name: string;
  type: TensorElemType;
  /** Numbers are fixed sizes, strings symbolic dimensions. */
  shape: ReadonlyArray<number | string>;
}

export interface ModelSpec {
  graphName: string;
  opset: number;
  irVersion: number;
  producer: string;
  nodes: readonly NodeSpec[];
  inputs: readonly ValueInfoSpec[];
  outputs: readonly ValueInfoSpec[];
  initializers: readonly TensorSpec[];
}

/** Accumulates one message's bytes. */
class Writer {
  private chunks: Uint8Array[] = [];
  private bytes: number[] = [];

  private flush(): void {
    if (this.bytes.length) this.chunks.push(Uint8Array.from(this.bytes));
    this.bytes = [];
  }

  varint(v: number | bigint): this {
    // int64 fields: negatives are 10-byte two's complement varints.
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
    return this;
  }

  private key(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, v: number): this {
    return this.key(field, 0).varint(v);
  }

  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.key(field, 5);
    this.bytes.push(...b);
    return this;
  }

  bytesField(field: number, data: Uint8Array): this {
    this.key(field, 2).varint(data.byteLength);
    this.flush();
    this.chunks.push(data);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }

  message(field: number, w: Writer): this {
    return this.bytesField(field, w.finish());
  }

  finish(): Uint8Array {
    this.flush();
    const n = this.chunks.reduce((a, c) => a + c.byteLength, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }
}

function tensorProto(t: TensorSpec): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d); // dims
  w.int(2, t.type); // data_type
  if (t.name !== undefined) w.string(8, t.name);
  return w.bytesField(9, t.raw); // raw_data
}

const ATTR = { FLOAT: 1, INT: 2, TENSOR: 4, INTS: 7 } as const;

function attributeProto(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  if ("f" in v) return w.float(2, v.f).int(20, ATTR.FLOAT);
  if ("i" in v) return w.int(3, v.i).int(20, ATTR.INT);
  if ("t" in v) return w.message(5, tensorProto(v.t)).int(20, ATTR.TENSOR);
  for (const x of v.ints) w.int(8, x);
  return w.int(20, ATTR.INTS);
}

function nodeProto(n: NodeSpec): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attributeProto(k, v));
  return w;
}

function valueInfoProto(v: ValueInfoSpec): Writer {
  const shape = new Writer();
  for (const d of v.shape) shape.message(1, typeof d === "number" ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, v.type).message(2, shape);
  return new Writer().string(1, v.name).message(2, new Writer().message(1, tensorType));
}

/** Serialises a ModelProto. */
export function encodeOnnxModel(m: ModelSpec): Uint8Array {
  const g = new Writer();
  for (const n of m.nodes) g.message(1, nodeProto(n));
  g.string(2, m.graphName);
  for (const t of m.initializers) g.message(5, tensorProto(t));
  for (const i of m.inputs) g.message(11, valueInfoProto(i));
  for (const o of m.outputs) g.message(12, valueInfoProto(o));
  return new Writer().int(1, m.irVersion).string(2, m.producer).message(7, g).message(8, new Writer().string(1, "").int(2, m.opset)).finish();
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function i64Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
}
