/** An explicit registry: no registration by import side effect. */
import { UnknownMethodError } from "../errors/index.js";
import type { MergeMethod } from "./define-merge-method.js";

export class MergeMethodRegistry {
  private readonly byName = new Map<string, MergeMethod>();
  constructor(methods: readonly MergeMethod[]) {
    for (const m of methods) {
      if (this.byName.has(m.name)) throw new Error(`merge method '${m.name}' registered twice`);
      this.byName.set(m.name, m);
    }
  }
  names(): string[] {
    return [...this.byName.keys()].sort();
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  get(name: string): MergeMethod {
    const m = this.byName.get(name);
    if (!m) throw new UnknownMethodError(name, this.names());
    return m;
  }
}
