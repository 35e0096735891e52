/**
 * A regex-level check of Helm templates for machines without helm: actions are closed, block
 * actions (if/range/with/define) pair with `end`, every `.Values.a.b` path exists in values.yaml
 * and every `include` names a defined template. It does not evaluate templates.
 */
export interface TemplateFile {
  name: string;
  text: string;
}

const BLOCK_OPENERS = new Set(["if", "range", "with", "define", "block"]);

/** The `{{ ... }}` actions of a template, comments dropped; problems are reported, not thrown. */
export function scanActions(file: TemplateFile, problems: string[]): string[] {
  const actions: string[] = [];
  let i = 0;
  for (;;) {
    const open = file.text.indexOf("{{", i);
    const strayClose = file.text.indexOf("}}", i);
    if (strayClose !== -1 && (open === -1 || strayClose < open)) {
      problems.push(`${file.name}:${lineOf(file.text, strayClose)}: '}}' without a matching '{{'`);
    }
    if (open === -1) break;
    const close = file.text.indexOf("}}", open + 2);
    const nextOpen = file.text.indexOf("{{", open + 2);
    if (close === -1 || (nextOpen !== -1 && nextOpen < close && !isComment(file.text.slice(open)))) {
      problems.push(`${file.name}:${lineOf(file.text, open)}: '{{' is not closed before the next action`);
      if (close === -1) break;
    }
    const body = file.text
      .slice(open + 2, close)
      .replace(/^-\s*/, "")
      .replace(/\s*-$/, "")
      .trim();
    if (!body.startsWith("/*")) actions.push(body);
    i = close + 2;
  }
  return actions;
}

function isComment(s: string): boolean {
  return /^\{\{-?\s*\/\*/.test(s);
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split("\n").length;
}

/** Checks every block action is closed by `end`, in order. */
export function checkBlocks(file: TemplateFile, actions: string[], problems: string[]): void {
  const stack: string[] = [];
  for (const a of actions) {
    const word = /^([a-z]+)\b/.exec(a)?.[1] ?? "";
    if (BLOCK_OPENERS.has(word)) stack.push(word);
    else if (word === "end") {
      if (!stack.pop()) problems.push(`${file.name}: '{{ end }}' without an open block`);
    }
  }
  if (stack.length) problems.push(`${file.name}: ${stack.length} block(s) not closed by '{{ end }}' (${stack.join(", ")})`);
}

/**
 * `.Values.a.b.c` paths used in the actions (also `$.Values...`, `.root.Values...`), including
 * those reached through variables bound to a part of .Values (`$w := .Values.worker` then `$w.gpu`).
 */
export function valuesPaths(actions: string[]): string[][] {
  const paths: string[][] = [];
  const aliases = new Map<string, string[]>();
  const split = (s: string) => (s ? s.slice(1).split(".") : []);
  for (const a of actions) {
    const bind = /^\$([A-Za-z_][A-Za-z0-9_]*)\s*:=\s*(?:\$|\.root)?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$/.exec(a);
    if (bind) aliases.set(bind[1], split(bind[2]));
    for (const m of a.matchAll(/(?:^|[\s($])(?:\$|\.root)?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
      paths.push(split(m[1]));
    }
    for (const m of a.matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
      const base = aliases.get(m[1]);
      if (base) paths.push([...base, ...split(m[2])]);
    }
  }
  return paths;
}

/** Reports each path that does not lead to a key present in `values`. */
export function checkValuesPaths(file: TemplateFile, paths: string[][], values: unknown, problems: string[]): void {
  for (const path of paths) {
    let node: unknown = values;
    for (const key of path) {
      if (node === null || typeof node !== "object" || !(key in (node as object))) {
        problems.push(`${file.name}: .Values.${path.join(".")} is not defined in values.yaml`);
        break;
      }
      node = (node as Record<string, unknown>)[key];
    }
  }
}

export function definedTemplates(actions: string[]): string[] {
  return actions.flatMap((a) => [...a.matchAll(/^define\s+"([^"]+)"/g)].map((m) => m[1]));
}

export function includedTemplates(actions: string[]): string[] {
  return actions.flatMap((a) => [...a.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)].map((m) => m[1]));
}

/** All problems found in a chart's templates, given its parsed values.yaml. */
export function lintTemplates(files: TemplateFile[], values: unknown): string[] {
  const problems: string[] = [];
  const scanned = files.map((f) => ({ f, actions: scanActions(f, problems) }));
  const defined = new Set(scanned.flatMap(({ actions }) => definedTemplates(actions)));
  for (const { f, actions } of scanned) {
    checkBlocks(f, actions, problems);
    checkValuesPaths(f, valuesPaths(actions), values, problems);
    for (const name of includedTemplates(actions)) {
      if (!defined.has(name)) problems.push(`${f.name}: include "${name}" names no defined template`);
    }
  }
  return problems;
}
