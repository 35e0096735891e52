/**
 * Parameter evaluation exactly as mergekit's `evaluate_setting` and `ConfigReader.parameter`
 * (mergekit/config.py), after pydantic's coercions: numbers are float64, and a list of booleans is
 * coerced to a list of 0/1 floats, so it interpolates like a number gradient (true iff non-zero).
 */
import { ParamError } from "../errors/index.js";
import type { ParamValue } from "../methods/params.js";
import type { ConditionalParam, ParamExpr, ParamScope } from "./merge-config.js";

/**
 * Gradient position of layer `j` (0-based) inside an output slice of `n` layers: `j/(n−1)`, and 1
 * when the slice has a single layer. The pre weights (`embed_tokens`) and post weights
 * (`model.norm`, `lm_head`) are evaluated at t = 0, so they take a gradient's first value.
 */
export function gradientPosition(layerIndexInSlice: number, sliceLength: number): number {
  return sliceLength > 1 ? layerIndexInSlice / (sliceLength - 1) : 1;
}

function isConditionalList(expr: readonly unknown[]): expr is ConditionalParam[] {
  return expr.length > 0 && typeof expr[0] === "object" && expr[0] !== null;
}

function interpolate(v: readonly number[], t: number): number {
  const scaled = t * (v.length - 1);
  const i0 = Math.trunc(scaled);
  const i1 = Math.min(v.length - 1, i0 + 1);
  const frac = scaled - i0;
  return (1 - frac) * v[i0] + frac * v[i1];
}

/**
 * Value of a parameter setting for one tensor at gradient position `t` ∈ [0, 1]; undefined when
 * it is a conditional list and no filter matches `tensorName`.
 */
export function evalParamExpr(expr: ParamExpr, tensorName: string, t: number): ParamValue | undefined {
  if (!Array.isArray(expr)) return expr;
  if (!(t >= 0 && t <= 1)) throw new ParamError(`evaluate gradient for ${tensorName}: position t=${t} is outside [0, 1]`);
  if (expr.length === 0) return undefined;
  if (isConditionalList(expr)) {
    for (const cond of expr) {
      if (cond.filter === undefined || cond.filter === "*" || (tensorName !== "" && tensorName.includes(cond.filter))) {
        return evalParamExpr(cond.value, tensorName, t);
      }
    }
    return undefined;
  }
  const list = expr as ParamValue[];
  if (list.every((e) => typeof e === "number")) return interpolate(list as number[], t);
  if (list.every((e) => typeof e === "boolean"))
    return (
      interpolate(
        list.map((b) => (b ? 1 : 0)),
        t,
      ) !== 0
    );
  return list[Math.trunc(t * (list.length - 1))];
}

/**
 * The first defined value of parameter `name` across `scopes`, in the order given (mergekit's:
 * the source model's parameters, slice, module, top level). A scope whose setting evaluates to
 * nothing (no filter matched) passes on to the next. The caller applies the method default.
 */
export function resolveParam(name: string, scopes: readonly (ParamScope | undefined)[], tensorName: string, t: number): ParamValue | undefined {
  for (const scope of scopes) {
    if (scope === undefined || !Object.prototype.hasOwnProperty.call(scope, name)) continue;
    const v = evalParamExpr(scope[name], tensorName, t);
    if (v !== undefined) return v;
  }
  return undefined;
}
