import { resolve } from "node:path";

/** Resolves a model reference like mergekit: local paths relative to the working directory; URIs unchanged. */
export function modelLocation(ref: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(ref) ? ref : resolve(ref);
}
