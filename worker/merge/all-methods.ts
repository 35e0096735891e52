/** Every merge method mergeloom ships, in one explicit list (no registration by import side effect). */
import type { MergeMethod } from "./define-merge-method.js";
import { MergeMethodRegistry } from "./merge-method-registry.js";
import { arceeFusion } from "./methods/arcee-fusion.js";
import { consensusTa, consensusTies } from "./methods/consensus.js";
import {
  breadcrumbs,
  breadcrumbsTies,
  dareLinear,
  dareTies,
  della,
  dellaLinear,
  taskArithmetic,
  ties,
} from "./methods/generalized-task-arithmetic.js";
import { karcher } from "./methods/karcher.js";
import { linear } from "./methods/linear.js";
import { modelStock } from "./methods/model-stock.js";
import { multislerp } from "./methods/multislerp.js";
import { nearswap } from "./methods/nearswap.js";
import { nuslerp } from "./methods/nuslerp.js";
import { passthrough } from "./methods/passthrough.js";
import { sce } from "./methods/sce.js";
import { slerp } from "./methods/slerp.js";

export const ALL_METHODS: readonly MergeMethod[] = [
  linear,
  slerp,
  nuslerp,
  multislerp,
  karcher,
  taskArithmetic,
  ties,
  dareLinear,
  dareTies,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
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
