/** Loads every floating-point tensor of a checkpoint as fp32 (evaluation of small models). */
import { isFloatDType } from "@mergeloom/proto/dtype";
import { decodeToF32 } from "../tensor/convert.js";
import { openModel } from "../storage/hub/open-model.js";
import { TensorIO } from "../driver/tensor-io.js";
import { createRemoteReader } from "../driver/remote-reader.js";
import type { WeightMap, WeightTensor } from "./onnx-evaluator.js";

export async function loadWeightsF32(ref: string): Promise<WeightMap> {
  const ck = await openModel(ref);
  const io = new TensorIO(createRemoteReader());
  const out = new Map<string, WeightTensor>();
  try {
    for (const t of ck.tensors.values()) {
      if (!isFloatDType(t.dtype)) continue;
      const buf = new Uint8Array(t.byteLength);
      await io.read(t.uri, t.offset, t.byteLength, buf);
      out.set(t.name, { data: decodeToF32(buf, t.dtype), shape: t.shape });
    }
  } finally {
    io.close();
  }
  return out;
}
