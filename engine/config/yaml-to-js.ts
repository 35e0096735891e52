import type { Document } from "yaml";
import { ConfigError } from "../errors/index.js";

/** Aliases may expand to at most this many nodes: more is a "billion laughs" file. */
const MAX_ALIAS_COUNT = 1000;

/** `doc.toJS()` with the yaml library's alias-expansion guard, its error naming the file and the fix. */
export function yamlToJs(doc: Document, file: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    throw new ConfigError(
      "",
      `parse ${file}: ${(e as Error).message} (YAML aliases expand to more than ${MAX_ALIAS_COUNT} nodes); write the values out instead of nesting aliases`,
      { cause: e },
    );
  }
}
