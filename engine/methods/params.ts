/**
 * Parameter declarations for merge methods. A method declares its global parameters and its
 * per-model ("tensor") parameters with defaults; the driver resolves every value (precedence,
 * gradients, filters) once, so a method only ever sees plain scalars.
 */
import type { ParamValue } from "@mergeloom/proto/merge-task";
// A parameter value crosses the wire in every task message: one definition, in proto.
export type { ParamValue };

export interface ParamSpec {
  kind: "number" | "bool" | "string";
  /** undefined = no default; `required` decides whether a missing value is an error. */
  default?: ParamValue;
  required: boolean;
  choices?: readonly string[];
}

/** A number parameter; without a default it is required. */
export function num(def?: number): ParamSpec {
  return def === undefined ? { kind: "number", required: true } : { kind: "number", default: def, required: false };
}
/** A number parameter with no default that may stay unset (the method decides what unset means). */
export function optionalNum(): ParamSpec {
  return { kind: "number", required: false };
}
export function bool(def?: boolean): ParamSpec {
  return def === undefined ? { kind: "bool", required: true } : { kind: "bool", default: def, required: false };
}
export function str(def: string | undefined, choices?: readonly string[]): ParamSpec {
  return { kind: "string", default: def, required: def === undefined, choices };
}

export type ParamSpecs = Record<string, ParamSpec>;
/** Resolved values: a key is absent when the parameter is unset and has no default. */
export type ResolvedParams = Record<string, ParamValue>;
