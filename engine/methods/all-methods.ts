/** Every merge method mergeloom ships, in one explicit list (no registration by import side effect). */
import type { MergeMethod } from "./define-merge-method.js";
import { MergeMethodRegistry } from "./merge-method-registry.js";
import { arceeFusion } from "./arcee-fusion.js";
import { consensusTa, consensusTies } from "./consensus.js";
import { generalizedTaskArithmeticMethods } from "./generalized-task-arithmetic.js";
import { karcher } from "./karcher.js";
import { linear } from "./linear.js";
import { modelStock } from "./model-stock.js";
import { multislerp } from "./multislerp.js";
import { nearswap } from "./nearswap.js";
import { nuslerp } from "./nuslerp.js";
import { passthrough } from "./passthrough.js";
import { sce } from "./sce.js";
import { slerp } from "./slerp.js";

export const ALL_METHODS: readonly MergeMethod[] = [
  linear,
  slerp,
  nuslerp,
  multislerp,
  karcher,
  ...generalizedTaskArithmeticMethods,
  modelStock,
  sce,
  nearswap,
  arceeFusion,
  passthrough,
  consensusTa,
  consensusTies,
];

export function createDefaultRegistry(): MergeMethodRegistry {
  return new MergeMethodRegistry(ALL_METHODS);
}
