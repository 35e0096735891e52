/**
 * mergekit's ModelReference string form `model+adapter`: a checkpoint with a LoRA adapter merged
 * into it. The whole string stays the model's identity (mergekit keys inputs by it); only opening
 * files needs the parts.
 */
import { modelLocation } from "../storage/model-location.js";

export interface ModelRefParts {
  model: string;
  lora?: string;
}

/** Splits `path+adapter`; a `+` inside a URI scheme (`git+https://`) is not a separator. */
export function splitModelRef(ref: string): ModelRefParts {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(ref);
  const from = scheme ? scheme[0].length : 0;
  const at = ref.indexOf("+", from);
  if (at < 0) return { model: ref };
  return { model: ref.slice(0, at), lora: ref.slice(at + 1) };
}

/** Where the files of a model reference (its checkpoint part) live: the one resolution point. */
export function resolveModelReference(ref: string): string {
  return modelLocation(splitModelRef(ref).model);
}

/** Where a LoRA adapter directory lives. */
export function resolveAdapterReference(ref: string): string {
  return modelLocation(ref);
}
