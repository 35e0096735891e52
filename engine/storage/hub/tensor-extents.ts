/**
 * Where each tensor's bytes lie in a safetensors file (absolute offsets, sorted): the unit the Hub
 * source reads ahead in. A defective header gives no extents (the source then reads plain ranges,
 * and the checkpoint reader reports the defect); a failed read is thrown.
 */
export interface Extent {
  start: number;
  end: number;
}

/** Header sizes above this are not a safetensors header worth reading ahead for. */
const MAX_HEADER_BYTES = 100 << 20;

export async function tensorExtents(read: (offset: number, length: number) => Promise<Uint8Array>, fileSize: number): Promise<Extent[]> {
  if (fileSize < 8) return [];
  const prefix = await read(0, 8);
  const n = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (n <= 0 || n > MAX_HEADER_BYTES || 8 + n > fileSize) return [];
  const text = new TextDecoder().decode(await read(8, n));
  let header: Record<string, { data_offsets?: unknown }>;
  try {
    header = JSON.parse(text) as typeof header;
  } catch {
    return [];
  }
  const out: Extent[] = [];
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__" || !Array.isArray(t?.data_offsets)) continue;
    const [a, b] = t.data_offsets as number[];
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || b <= a || 8 + n + b > fileSize) continue;
    out.push({ start: 8 + n + a, end: 8 + n + b });
  }
  return out.sort((x, y) => x.start - y.start);
}
