/** Safetensors dtypes, their element sizes, and the torch/mergekit names that configs use. */
export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;

export type DType = keyof typeof DTYPE_BYTES;
export const DTYPES = Object.keys(DTYPE_BYTES) as DType[];
/** Dtypes the merge kernels read and write; others pass through untouched. */
export type FloatDType = "F32" | "F16" | "BF16";

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}
export function isFloatDType(d: DType): d is FloatDType {
  return d === "F32" || d === "F16" || d === "BF16";
}
/** Input dtypes the merge decodes to fp32; any other (integers, bool, fp8) can only be copied. */
export const MERGEABLE_DTYPES = ["F32", "F16", "BF16", "F64"] as const;
export function isMergeableDType(d: DType): boolean {
  return (MERGEABLE_DTYPES as readonly string[]).includes(d);
}

const CONFIG_NAMES: Record<string, FloatDType> = {
  float32: "F32",
  fp32: "F32",
  float: "F32",
  float16: "F16",
  fp16: "F16",
  half: "F16",
  bfloat16: "BF16",
  bf16: "BF16",
};
export const CONFIG_DTYPE_NAMES = Object.keys(CONFIG_NAMES);

/** mergekit/torch dtype name (`bfloat16`) → safetensors dtype; undefined when unknown. */
export function parseConfigDType(name: string): FloatDType | undefined {
  return CONFIG_NAMES[name.toLowerCase()];
}
/** Safetensors dtype → the `torch_dtype` string HF writes into config.json. */
export function torchDTypeName(d: FloatDType): string {
  return d === "F32" ? "float32" : d === "F16" ? "float16" : "bfloat16";
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
