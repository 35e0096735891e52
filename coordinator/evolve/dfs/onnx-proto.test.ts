import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeOnnxModel, TensorType } from "./onnx-proto.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("an empty model encodes to the hand-assembled protobuf bytes", () => {
  const bytes = encodeOnnxModel({ graphName: "g", opset: 14, irVersion: 7, producer: "p", nodes: [], inputs: [], outputs: [], initializers: [] });
  // ir_version(1)=7: 08 07 | producer_name(2)="p": 12 01 70 | graph(7){name(2)="g"}: 3a 03 12 01 67
  // | opset_import(8){domain(1)="", version(2)=14}: 42 04 0a 00 10 0e
  assert.equal(hex(bytes), "0807" + "120170" + "3a03120167" + "42040a00100e");
});

test("a node with a negative int attribute and a symbolic-shape input encode as protobuf expects", () => {
  const bytes = encodeOnnxModel({
    graphName: "",
    opset: 14,
    irVersion: 7,
    producer: "",
    nodes: [{ op: "S", inputs: ["x"], outputs: ["y"], name: "n", attrs: { a: { i: -1 } } }],
    inputs: [{ name: "x", type: TensorType.INT64, shape: ["b", 3] }],
    outputs: [],
    initializers: [],
  });
  // attribute{name(1)="a", i(3)=-1 as a 10-byte varint, type(20)=INT(2)}
  const attr = "0a0161" + "18" + "ffffffffffffffffff01" + "a00102";
  const node = "0a0178" + "120179" + "1a016e" + "220153" + "2a" + (attr.length / 2).toString(16).padStart(2, "0") + attr;
  // value_info{name="x", type{tensor_type{elem_type=7, shape{dim{param "b"}, dim{value 3}}}}}
  const shape = "0a03120162" + "0a020803";
  const tensorType = "0807" + "12" + (shape.length / 2).toString(16).padStart(2, "0") + shape;
  const typeProto = "0a" + (tensorType.length / 2).toString(16).padStart(2, "0") + tensorType;
  const vi = "0a0178" + "12" + (typeProto.length / 2).toString(16).padStart(2, "0") + typeProto;
  const graph = "0a" + (node.length / 2).toString(16).padStart(2, "0") + node + "1200" + "5a" + (vi.length / 2).toString(16).padStart(2, "0") + vi;
  assert.equal(hex(bytes), "0807" + "1200" + "3a" + (graph.length / 2).toString(16).padStart(2, "0") + graph + "42040a00100e");
});
