/**
 * mergekit YAML → validated MergeConfig. Accepts what mergekit accepts (mergekit/config.py:
 * MergeConfiguration and friends; ModelReference from mergekit/common.py): what mergekit's pydantic
 * schema silently drops — unknown keys, parameters the method does not read, global parameters set
 * on a model, a duplicate YAML key — is dropped here too, with one warning each naming the field,
 * its location and the closest valid name. With `strict`, each of those is an error instead.
 * Wrong value types, unknown methods and dtypes are errors either way (mergekit fails on them too).
 * Checks are written by hand rather than with a schema library: almost every rule needs its own
 * message (closest name, valid choices, location), which is clearer inline.
 */
import { yamlToJs } from "./yaml-to-js.js";
import { isMap, isNode, isScalar, LineCounter, parseDocument, visit, type Document } from "yaml";
import { CONFIG_DTYPE_NAMES, parseConfigDType, type FloatDType } from "@mergeloom/proto/dtype";
import { ConfigError, UnknownMethodError } from "../errors/index.js";
import type { MergeMethod } from "../methods/define-merge-method.js";
import type { MergeMethodRegistry } from "../methods/merge-method-registry.js";
import type { ParamSpec, ParamValue } from "../methods/params.js";
import { chatTemplateNames, resolveChatTemplate } from "../output/chat-templates.js";
import { closestName } from "./closest-name.js";
import type {
  ConditionalParam,
  MergeConfig,
  ParamExpr,
  ParamScope,
  SliceConfig,
  SourceConfig,
  TaskVectorRef,
  TokenEmbeddingConfig,
  TokenizerConfig,
  ModuleConfig,
} from "./merge-config.js";

type Seg = string | number;
type Obj = Record<string, unknown>;

const TOP_KEYS = [
  "merge_method",
  "slices",
  "models",
  "parameters",
  "base_model",
  "dtype",
  "out_dtype",
  "tokenizer_source",
  "tokenizer",
  "chat_template",
  "modules",
] as const;
/** Keys mergekit reads and then ignores: `name` names a stage for mergekit-multi. */
const IGNORED_TOP_KEYS = ["name"];
/** `residual_weight` is declared on mergekit's OutputSliceDefinition but never used. */
const SLICE_KEYS = ["sources", "parameters", "base_model", "residual_weight"];
const SOURCE_KEYS = ["model", "layer_range", "parameters", "vectors"];
const MODEL_KEYS = ["model", "parameters", "vectors"];
const MODEL_REF_KEYS = ["model", "lora", "override_architecture"];
const MODEL_PATH_KEYS = ["path", "revision"];
const TOKENIZER_KEYS = ["source", "tokens", "pad_to_multiple_of"];
const VECTOR_KEYS = ["path", "scale"];
const CONDITIONAL_KEYS = ["filter", "value"];

function formatPath(segs: readonly Seg[]): string {
  let out = "";
  for (const s of segs) out += typeof s === "number" ? `[${s}]` : out === "" ? s : `.${s}`;
  return out;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  // JSON.stringify writes NaN and ±Infinity as null
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  return `${typeof v} ${JSON.stringify(v)}`;
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface ParseOptions {
  /** Refuse what mergekit ignores (unknown keys and parameters, duplicate keys and models). */
  strict?: boolean;
}

/** How the message of a warning ends: what mergekit does and how to silence it. */
const STRICT_HINT = "mergekit ignores it too (--strict makes this an error)";

class Reader {
  readonly warnings: string[] = [];
  /** Unknown keys dropped so far, by parent path: a later "missing" error names its likely typo. */
  private readonly dropped: { parent: string; key: string }[] = [];

  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    readonly file: string,
    readonly strict: boolean,
  ) {}

  /** The nearest position in the file of `segs` (or of its closest existing parent). */
  private where(segs: readonly Seg[]): string {
    for (let n = segs.length; n >= 0; n--) {
      const node: unknown = n === 0 ? this.doc.contents : this.doc.getIn(segs.slice(0, n), true);
      if (isNode(node) && node.range) {
        const { line, col } = this.lines.linePos(node.range[0]);
        return `${this.file}:${line}:${col}`;
      }
    }
    return this.file;
  }

  fail(segs: readonly Seg[], message: string): never {
    const last = segs[segs.length - 1];
    const parent = formatPath(segs.slice(0, -1));
    const typo = typeof last === "string" ? this.dropped.find((d) => d.parent === parent && closestName(d.key, [last]) === last) : undefined;
    const hint = typo ? `; the unknown key '${typo.key}' here was ignored — did you mean '${last}'?` : "";
    throw new ConfigError(formatPath(segs), `${message}${hint} (at ${this.where(segs)})`);
  }

  /** Something mergekit accepts and ignores: one warning, or an error under `strict`. */
  ignore(segs: readonly Seg[], message: string, tail = STRICT_HINT): void {
    if (this.strict) this.fail(segs, message);
    this.warnings.push(`${this.where(segs)}: ${formatPath(segs)}: ${message}; ${tail}`);
  }

  /** Drops keys outside `allowed` with a warning (suggesting the closest), skipping `ignored`. */
  checkKeys(obj: Obj, segs: readonly Seg[], allowed: readonly string[], what: string, ignored: readonly string[] = []): void {
    for (const key of Object.keys(obj)) {
      if (allowed.includes(key) || ignored.includes(key)) continue;
      const near = closestName(key, allowed);
      this.ignore([...segs, key], `unknown key '${key}' in ${what}${near ? `; did you mean '${near}'?` : ""} (valid: ${allowed.join(", ")})`);
      this.dropped.push({ parent: formatPath(segs), key });
      delete obj[key];
    }
  }

  /** PyYAML keeps the last of duplicate mapping keys; so does `toJS` with uniqueKeys off. */
  checkDuplicateKeys(): void {
    const dups: { key: string; first: number; again: number }[] = [];
    visit(this.doc, {
      Map: (_key, node) => {
        const seen = new Map<string, number>();
        for (const pair of node.items) {
          const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
          const at = isNode(pair.key) && pair.key.range ? pair.key.range[0] : 0;
          const first = seen.get(k);
          if (first !== undefined) dups.push({ key: k, first, again: at });
          else seen.set(k, at);
        }
      },
    });
    for (const d of dups) {
      const first = this.lines.linePos(d.first).line;
      const { line, col } = this.lines.linePos(d.again);
      const message = `duplicate key '${d.key}' (first on line ${first})`;
      if (this.strict) throw new ConfigError(d.key, `${message}; keep one (at ${this.file}:${line}:${col})`);
      this.warnings.push(`${this.file}:${line}:${col}: ${message}; the last value is used, as PyYAML does (--strict makes this an error)`);
    }
  }

  mapping(v: unknown, segs: readonly Seg[], what: string): Obj {
    if (!isObj(v)) this.fail(segs, `${what} must be a mapping, got ${describe(v)}`);
    return v;
  }

  string(v: unknown, segs: readonly Seg[], what: string): string {
    if (typeof v !== "string" || v === "") this.fail(segs, `${what} must be a non-empty string, got ${describe(v)}`);
    return v;
  }

  list(v: unknown, segs: readonly Seg[], what: string): unknown[] {
    if (!Array.isArray(v) || v.length === 0) this.fail(segs, `${what} must be a non-empty list, got ${describe(v)}`);
    return v;
  }
}

/**
 * Parses and validates a mergekit merge config; throws ConfigError / UnknownMethodError. What
 * mergekit ignores is listed in the result's `warnings` (or thrown, with `strict`).
 */
export function parseMergeConfig(text: string, file: string, registry: MergeMethodRegistry, opts: ParseOptions = {}): MergeConfig {
  const lines = new LineCounter();
  // YAML 1.1 like mergekit's PyYAML (`yes`/`on` are booleans); `1e-3` is still read as a number.
  // Duplicate keys are allowed (PyYAML keeps the last) and reported by checkDuplicateKeys.
  const doc = parseDocument(text, { version: "1.1", lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const { line, col } = lines.linePos(e.pos[0]);
    const at = `${file}:${line}:${col}`;
    throw new ConfigError("", `parse ${at}: invalid YAML: ${e.message.split("\n")[0]}`, { cause: e });
  }
  const r: Reader = new Reader(doc, lines, file, !!opts.strict);
  r.checkDuplicateKeys();
  const root = yamlToJs(doc, file);
  if (!isMap(doc.contents) || !isObj(root)) r.fail([], `the file must be a YAML mapping with merge_method and models or slices, got ${describe(root)}`);

  r.checkKeys(root, [], TOP_KEYS, "the merge config", IGNORED_TOP_KEYS);

  if (root.merge_method === undefined || root.merge_method === null) {
    r.fail(["merge_method"], `merge_method is missing; add e.g. \`merge_method: linear\` (known: ${registry.names().join(", ")})`);
  }
  const methodName = r.string(root.merge_method, ["merge_method"], "merge_method");
  if (!registry.has(methodName)) throw new UnknownMethodError(methodName, registry.names());
  const method = registry.get(methodName);

  const baseModel = present(root.base_model) ? parseModelRef(r, root.base_model, ["base_model"]) : undefined;

  // mergekit: exactly one of models/slices/modules, where an empty list or mapping counts as absent.
  const hasModels = Array.isArray(root.models) ? root.models.length > 0 : present(root.models);
  const hasSlices = Array.isArray(root.slices) ? root.slices.length > 0 : present(root.slices);
  const hasModules = isObj(root.modules) ? Object.keys(root.modules).length > 0 : present(root.modules);
  if ([hasModels, hasSlices, hasModules].filter(Boolean).length > 1) {
    r.fail([hasModules ? "modules" : "slices"], "more than one of `models:`, `slices:` and `modules:` is set; keep exactly one");
  }
  if (!hasModels && !hasSlices && !hasModules) r.fail([], "neither `models:` nor `slices:` lists any model; add one of them");

  let modules: ModuleConfig[] | undefined;
  let slices: SliceConfig[];
  if (hasModules) {
    const obj = r.mapping(root.modules, ["modules"], "modules");
    modules = Object.entries(obj).map(([name, v]) => parseModule(r, method, name, v, baseModel));
    slices = modules.flatMap((m) => m.slices);
  } else {
    slices = parseInputs(r, method, root, [], baseModel, hasModels);
  }
  const cfg: MergeConfig = { mergeMethod: methodName, fromModels: hasModels, slices, sourceText: text, file, warnings: r.warnings };
  if (modules) cfg.modules = modules;
  if (baseModel !== undefined) cfg.baseModel = baseModel;
  if (present(root.parameters)) cfg.parameters = parseScope(r, method, root.parameters, ["parameters"], "global");
  if (present(root.dtype)) cfg.dtype = parseDType(r, root.dtype, ["dtype"]);
  if (present(root.out_dtype)) cfg.outDtype = parseDType(r, root.out_dtype, ["out_dtype"]);
  const tokenizer = parseTokenizer(r, root);
  if (tokenizer !== undefined) {
    cfg.tokenizer = tokenizer;
    cfg.tokenizerSource = tokenizer.source;
  }
  if (present(root.chat_template)) cfg.chatTemplate = parseChatTemplate(r, root.chat_template);

  checkBase(r, method, cfg);
  return cfg;
}

/** `models:` (one slice of whole models) or `slices:` of a config or of one module. */
function parseInputs(r: Reader, method: MergeMethod, obj: Obj, segs: Seg[], baseModel: string | undefined, fromModels: boolean): SliceConfig[] {
  return fromModels
    ? [
        {
          sources: collapseDuplicateModels(
            r,
            r.list(obj.models, [...segs, "models"], "models").map((m, i) => parseSource(r, method, m, [...segs, "models", i], false)),
            [...segs, "models"],
          ),
        },
      ]
    : r.list(obj.slices, [...segs, "slices"], "slices").map((s, i) => parseSlice(r, method, s, [...segs, "slices", i], baseModel));
}

/** mergekit's OutputModuleDefinition: `{slices | models, parameters}` for one module. */
function parseModule(r: Reader, method: MergeMethod, name: string, v: unknown, baseModel: string | undefined): ModuleConfig {
  const segs: Seg[] = ["modules", name];
  const obj = r.mapping(v, segs, `module '${name}'`);
  r.checkKeys(obj, segs, ["slices", "models", "parameters"], `module '${name}'`);
  const hasModels = Array.isArray(obj.models) ? obj.models.length > 0 : present(obj.models);
  const hasSlices = Array.isArray(obj.slices) ? obj.slices.length > 0 : present(obj.slices);
  if (hasModels === hasSlices) r.fail(segs, `module '${name}' needs exactly one of \`models:\` or \`slices:\``);
  const mod: ModuleConfig = { name, slices: parseInputs(r, method, obj, segs, baseModel, hasModels), fromModels: hasModels };
  if (present(obj.parameters)) mod.parameters = parseScope(r, method, obj.parameters, [...segs, "parameters"], "global");
  return mod;
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function checkBase(r: Reader, method: MergeMethod, cfg: MergeConfig): void {
  if (method.base !== "required") return;
  if (cfg.baseModel === undefined && (cfg.fromModels || cfg.slices.some((s) => s.baseModel === undefined))) {
    r.fail(["base_model"], `merge method '${method.name}' needs a base model; add \`base_model: <path>\``);
  }
  // In the slices form the base is not appended: each slice must list it, or its tensors are missing.
  const groups = cfg.modules ?? [{ name: "", slices: cfg.slices, fromModels: cfg.fromModels }];
  for (const g of groups) {
    if (g.fromModels) continue;
    g.slices.forEach((s, i) => {
      const base = s.baseModel ?? cfg.baseModel;
      if (!s.sources.some((src) => src.model === base)) {
        r.fail(
          [...(g.name ? ["modules", g.name] : []), "slices", i, "sources"],
          `merge method '${method.name}' needs the base model '${base}' among each slice's sources; add it with the same layer_range`,
        );
      }
    });
  }
}

function parseSlice(r: Reader, method: MergeMethod, v: unknown, segs: Seg[], baseModel: string | undefined): SliceConfig {
  const obj = r.mapping(v, segs, "a slice");
  r.checkKeys(obj, segs, SLICE_KEYS, "a slice");
  // mergekit: a slice's base_model overrides the top-level one for that slice's tensors
  // (mergekit-evolve's slerp genomes pick one per slice).
  const sliceBase = present(obj.base_model) ? parseModelRef(r, obj.base_model, [...segs, "base_model"]) : undefined;
  if (present(obj.residual_weight) && typeof obj.residual_weight !== "number") {
    r.fail([...segs, "residual_weight"], `residual_weight must be a number, got ${describe(obj.residual_weight)}`);
  }
  const sources = r.list(obj.sources, [...segs, "sources"], "sources").map((s, i) => parseSource(r, method, s, [...segs, "sources", i], true));
  const lengths = sources.map((s) => (s.layerRange ? s.layerRange[1] - s.layerRange[0] : 0));
  const bad = lengths.findIndex((n) => n !== lengths[0]);
  if (bad > 0) {
    r.fail(
      [...segs, "sources", bad, "layer_range"],
      `all sources of a slice must span the same number of layers (source 0 has ${lengths[0]}, source ${bad} has ${lengths[bad]})`,
    );
  }
  const slice: SliceConfig = { sources: collapseDuplicateModels(r, sources, [...segs, "sources"]) };
  if (sliceBase !== undefined && sliceBase !== baseModel) slice.baseModel = sliceBase;
  if (present(obj.parameters)) slice.parameters = parseScope(r, method, obj.parameters, [...segs, "parameters"], "global");
  return slice;
}

function parseSource(r: Reader, method: MergeMethod, v: unknown, segs: Seg[], inSlice: boolean): SourceConfig {
  const what = inSlice ? "a slice source" : "a models entry";
  const obj = r.mapping(v, segs, what);
  if (!inSlice && "layer_range" in obj) {
    r.ignore([...segs, "layer_range"], "layer_range is only read in `slices:` sources; `models:` always merges whole models (use `slices:` to pick layers)");
    delete obj.layer_range;
  }
  r.checkKeys(obj, segs, inSlice ? SOURCE_KEYS : MODEL_KEYS, what);
  if (!present(obj.model)) r.fail([...segs, "model"], `${what} needs \`model: <path>\``);
  const src: SourceConfig = { model: parseModelRef(r, obj.model, [...segs, "model"]) };
  if (inSlice) src.layerRange = parseLayerRange(r, obj.layer_range, [...segs, "layer_range"]);
  if (present(obj.parameters)) src.parameters = parseScope(r, method, obj.parameters, [...segs, "parameters"], "model");
  if (present(obj.vectors)) src.vectors = parseVectors(r, obj.vectors, [...segs, "vectors"]);
  return src;
}

function parseLayerRange(r: Reader, v: unknown, segs: Seg[]): [number, number] {
  const fix = "write it as [start, end] with integers 0 ≤ start < end (end exclusive)";
  if (!present(v)) r.fail(segs, `layer_range is missing; ${fix}`);
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x))) {
    r.fail(segs, `layer_range must be two integers, got ${JSON.stringify(v)}; ${fix}`);
  }
  const [start, end] = v as [number, number];
  if (start < 0 || start >= end) r.fail(segs, `layer_range [${start}, ${end}] is empty or negative; ${fix}`);
  return [start, end];
}

/** mergekit's ModelReference: `path`, `path@revision`, `path+lora`, or the long form. */
function parseModelRef(r: Reader, v: unknown, segs: Seg[]): string {
  if (typeof v === "string") return checkModelPath(r, v, segs, true);
  if (!isObj(v)) r.fail(segs, `a model reference must be a path string or {model: {path: ...}}, got ${describe(v)}`);
  r.checkKeys(v, segs, MODEL_REF_KEYS, "a model reference");
  if (present(v.override_architecture)) r.fail([...segs, "override_architecture"], "override_architecture is not supported yet; remove it");
  const model = parseModelPath(r, v.model, [...segs, "model"], "model");
  // The long form's `lora:` is the same reference as the short `model+adapter`.
  return present(v.lora) ? `${model}+${parseModelPath(r, v.lora, [...segs, "lora"], "lora")}` : model;
}

function parseModelPath(r: Reader, inner: unknown, innerSegs: Seg[], what: string): string {
  if (typeof inner === "string") return checkModelPath(r, inner, innerSegs, false);
  if (!isObj(inner)) r.fail(innerSegs, `${what} must be a path string or {path: ...}, got ${describe(inner)}`);
  r.checkKeys(inner, innerSegs, MODEL_PATH_KEYS, "a model path");
  const path = checkModelPath(r, r.string(inner.path, [...innerSegs, "path"], "path"), [...innerSegs, "path"], false);
  if (!present(inner.revision)) return path;
  // The long form's revision is the short form's `@revision`: one reference string either way.
  const revision = r.string(inner.revision, [...innerSegs, "revision"], "revision");
  if (path.includes("@")) r.fail([...innerSegs, "revision"], `'${path}' already names a revision; remove one of them`);
  return checkModelPath(r, `${path}@${revision}`, [...innerSegs, "revision"], false);
}

function checkModelPath(r: Reader, s: string, segs: Seg[], short: boolean): string {
  if (s === "") r.fail(segs, "the model path is empty; write the checkpoint directory");
  // mergekit's `model+adapter` (a PEFT LoRA directory merged into the model); exactly one `+`.
  if (short && s.split("+").length > 2) r.fail(segs, `'${s}' has more than one '+'; write model+adapter with one LoRA adapter`);
  if (short && (s.startsWith("+") || s.endsWith("+"))) r.fail(segs, `'${s}' has an empty model or adapter around '+'; write model+adapter`);
  if (s.includes("@")) {
    // `org/name@revision`: a Hub reference (a local path that exists still wins when resolved).
    const at = s.indexOf("@");
    if (at === 0 || at === s.length - 1 || s.indexOf("@", at + 1) >= 0) {
      r.fail(segs, `'${s}' is not a valid reference; write org/name@revision (branch, tag or commit)`);
    }
  }
  return s;
}

/** A built-in name, "auto" or a literal template, checked now so a bad name fails before the merge. */
function parseChatTemplate(r: Reader, v: unknown): string {
  const t = r.string(v, ["chat_template"], "chat_template");
  if (t !== "auto") {
    try {
      resolveChatTemplate(t);
    } catch (err) {
      const near = closestName(t, chatTemplateNames());
      r.fail(["chat_template"], `${(err as Error).message.replace(/^config chat_template: /, "")}${near ? `; did you mean '${near}'?` : ""}`);
    }
  }
  return t;
}

function parseVectors(r: Reader, v: unknown, segs: Seg[]): TaskVectorRef[] {
  return r.list(v, segs, "vectors").map((e, i) => {
    const es = [...segs, i];
    const obj = r.mapping(e, es, "a vectors entry ({path, scale})");
    r.checkKeys(obj, es, VECTOR_KEYS, "a vectors entry");
    const path = r.string(obj.path, [...es, "path"], "path");
    let scale = 1;
    if (present(obj.scale)) {
      if (typeof obj.scale !== "number" || !Number.isFinite(obj.scale)) r.fail([...es, "scale"], `scale must be a number, got ${describe(obj.scale)}`);
      scale = obj.scale;
    }
    return { path, scale };
  });
}

function parseDType(r: Reader, v: unknown, segs: Seg[]): FloatDType {
  const name = typeof v === "string" ? v.replace(/^torch\./, "") : undefined;
  const d = name === undefined ? undefined : parseConfigDType(name);
  if (d === undefined) r.fail(segs, `unknown dtype ${JSON.stringify(v)} (valid: ${CONFIG_DTYPE_NAMES.join(", ")})`);
  return d;
}

function parseTokenizer(r: Reader, root: Obj): TokenizerConfig | undefined {
  const parseSource = (v: unknown, segs: Seg[]): string => (v === "base" || v === "union" ? v : parseModelRef(r, v, segs));
  if (present(root.tokenizer_source) && present(root.tokenizer)) {
    r.fail(["tokenizer"], "both tokenizer_source and tokenizer are set; keep one");
  }
  if (present(root.tokenizer_source)) return { source: parseSource(root.tokenizer_source, ["tokenizer_source"]) };
  // `tokenizer: {}` is a TokenizerConfig with every default, so a union; an empty `tokenizer:` is none.
  if (!present(root.tokenizer)) return undefined;
  const tok = r.mapping(root.tokenizer, ["tokenizer"], "tokenizer");
  r.checkKeys(tok, ["tokenizer"], TOKENIZER_KEYS, "tokenizer");
  // mergekit's TokenizerConfig.source defaults to "union".
  const cfg: TokenizerConfig = { source: present(tok.source) ? parseSource(tok.source, ["tokenizer", "source"]) : "union" };
  if (present(tok.pad_to_multiple_of)) {
    const n = tok.pad_to_multiple_of;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1)
      r.fail(["tokenizer", "pad_to_multiple_of"], `pad_to_multiple_of must be a positive integer, got ${describe(n)}`);
    cfg.padToMultipleOf = n;
  }
  if (present(tok.tokens)) {
    const tokens = r.mapping(tok.tokens, ["tokenizer", "tokens"], "tokenizer.tokens");
    cfg.tokens = {};
    for (const [name, v] of Object.entries(tokens)) cfg.tokens[name] = parseTokenEmbedding(r, v, ["tokenizer", "tokens", name]);
  }
  return cfg;
}

/** mergekit's TokenEmbeddingConfig: {source: model | {kind: model_token, model, token|token_id} | {kind: zero}, force}. */
function parseTokenEmbedding(r: Reader, v: unknown, segs: Seg[]): TokenEmbeddingConfig {
  const obj = v === null ? {} : r.mapping(v, segs, "a token's embedding config");
  r.checkKeys(obj, segs, ["source", "force"], "a token's embedding config");
  const out: TokenEmbeddingConfig = { force: false };
  if (present(obj.force)) {
    if (typeof obj.force !== "boolean") r.fail([...segs, "force"], `force must be true or false, got ${describe(obj.force)}`);
    out.force = obj.force;
  }
  const src = obj.source;
  const ss = [...segs, "source"];
  if (!present(src)) return out;
  if (isObj(src) && present(src.kind)) {
    if (src.kind === "zero") {
      r.checkKeys(src, ss, ["kind"], "a zero embedding source");
      out.source = { kind: "zero" };
    } else if (src.kind === "model_token") {
      r.checkKeys(src, ss, ["kind", "model", "token", "token_id"], "a model_token embedding source");
      const model = parseModelRef(r, src.model, [...ss, "model"]);
      const hasId = present(src.token_id);
      if (hasId === present(src.token)) r.fail(ss, "a model_token source needs exactly one of token or token_id");
      if (hasId && (typeof src.token_id !== "number" || !Number.isInteger(src.token_id)))
        r.fail([...ss, "token_id"], `token_id must be an integer, got ${describe(src.token_id)}`);
      out.source = hasId
        ? { kind: "model_token", model, tokenId: src.token_id as number }
        : { kind: "model_token", model, token: r.string(src.token, [...ss, "token"], "token") };
    } else {
      r.fail([...ss, "kind"], `unknown embedding source kind ${describe(src.kind)} (valid: model_token, zero; or a model reference)`);
    }
  } else {
    out.source = { kind: "model", model: parseModelRef(r, src, ss) };
  }
  return out;
}

/**
 * A `parameters:` mapping. At top level and slice level ("global") both the method's global and
 * per-model parameters may be set (the latter as defaults for every model); on a model only the
 * per-model ones may, since mergekit never reads a global parameter there.
 */
function parseScope(r: Reader, method: MergeMethod, v: unknown, segs: Seg[], level: "global" | "model"): ParamScope {
  const obj = r.mapping(v, segs, "parameters");
  const allowed = level === "model" ? method.modelParams : { ...method.params, ...method.modelParams };
  const valid = Object.keys(allowed).sort();
  const scope: ParamScope = {};
  for (const [name, value] of Object.entries(obj)) {
    const ps = [...segs, name];
    const spec = Object.prototype.hasOwnProperty.call(allowed, name) ? allowed[name] : undefined;
    if (spec === undefined) {
      // mergekit reads only the method's own parameters, and global ones never per model.
      if (level === "model" && Object.prototype.hasOwnProperty.call(method.params, name)) {
        r.ignore(
          ps,
          `ignoring '${name}': it is a global parameter of '${method.name}' and is never read per model; move it to the top-level (or slice) parameters`,
        );
        continue;
      }
      const near = closestName(name, valid);
      const list = valid.length > 0 ? valid.join(", ") : "none";
      r.ignore(
        ps,
        `ignoring parameter '${name}': merge method '${method.name}' does not use it${near ? `; did you mean '${near}'?` : ""} (valid${level === "model" ? " per model" : ""}: ${list})`,
      );
      continue;
    }
    scope[name] = parseParamExpr(r, value, ps, name, spec);
  }
  return scope;
}

function parseParamExpr(r: Reader, v: unknown, segs: Seg[], name: string, spec: ParamSpec): ParamExpr {
  if (isObj(v)) return [parseConditional(r, v, segs, name, spec)]; // a lone {filter, value}
  if (!Array.isArray(v)) return parseScalar(r, v, segs, name, spec);
  if (v.length === 0) r.fail(segs, `'${name}' is an empty list; give a value, a gradient [v0, v1, ...] or [{filter, value}, ...]`);
  if (v.some(isObj)) {
    return v.map((c, i): ConditionalParam => {
      if (!isObj(c))
        r.fail([...segs, i], `mix of {filter, value} entries and plain values in '${name}'; make every entry {filter, value} (omit filter for a fallback)`);
      return parseConditional(r, c, [...segs, i], name, spec);
    });
  }
  return parseGradient(r, v, segs, name, spec);
}

function parseConditional(r: Reader, c: Obj, segs: Seg[], name: string, spec: ParamSpec): ConditionalParam {
  r.checkKeys(c, segs, CONDITIONAL_KEYS, `a conditional value of '${name}'`);
  if (!present(c.value)) r.fail([...segs, "value"], `a {filter, value} entry of '${name}' has no value`);
  const cond: ConditionalParam = {
    value: Array.isArray(c.value) ? parseGradient(r, c.value, [...segs, "value"], name, spec) : parseScalar(r, c.value, [...segs, "value"], name, spec),
  };
  if (present(c.filter)) {
    if (typeof c.filter !== "string") r.fail([...segs, "filter"], `filter must be a tensor-name substring, got ${describe(c.filter)}`);
    cond.filter = c.filter;
  }
  return cond;
}

function parseGradient(r: Reader, v: unknown[], segs: Seg[], name: string, spec: ParamSpec): ParamValue[] {
  if (v.length === 0) r.fail(segs, `'${name}' is an empty list; give at least one value`);
  if (spec.kind === "bool") {
    // Lists of booleans interpolate as 0/1 (pydantic coerces them to floats); numbers are not accepted.
    v.forEach((e, i) => {
      if (typeof e !== "boolean") r.fail([...segs, i], `'${name}' is a boolean; a list must hold only true/false, got ${describe(e)}`);
    });
    return v as boolean[];
  }
  return v.map((e, i) => parseScalar(r, e, [...segs, i], name, spec));
}

function parseScalar(r: Reader, v: unknown, segs: Seg[], name: string, spec: ParamSpec): ParamValue {
  if (spec.kind === "number") {
    if (typeof v !== "number" || !Number.isFinite(v))
      r.fail(segs, `'${name}' must be a number, a gradient [v0, v1, ...] or [{filter, value}, ...], got ${describe(v)}`);
    return v;
  }
  if (spec.kind === "bool") {
    if (typeof v === "boolean") return v;
    // mergekit keeps numbers and uses their truthiness.
    if (typeof v === "number" && Number.isFinite(v)) return v !== 0;
    r.fail(segs, `'${name}' must be true or false, got ${describe(v)}`);
  }
  if (typeof v !== "string") r.fail(segs, `'${name}' must be a string${spec.choices ? ` (one of ${spec.choices.join(", ")})` : ""}, got ${describe(v)}`);
  if (spec.choices && !spec.choices.includes(v)) {
    const near = closestName(v, spec.choices);
    r.fail(segs, `'${name}' is ${JSON.stringify(v)}${near ? `; did you mean '${near}'?` : ""} (valid: ${spec.choices.join(", ")})`);
  }
  return v;
}

/**
 * mergekit keys a slice's inputs by model reference (plan.py: `dict(zip(models, weights_in))`), so
 * a model listed twice in one slice (or models list) is merged once: in the place of its first
 * entry, reading the layers of its last entry, with each per-model parameter taken from the first
 * entry that sets it (ConfigReader.parameter scans the sources in order). Reproduced, with a
 * warning, because the same config must give the same model.
 */
function collapseDuplicateModels(r: Reader, sources: SourceConfig[], segs: Seg[]): SourceConfig[] {
  const byModel = new Map<string, number[]>();
  sources.forEach((s, i) => byModel.set(s.model, [...(byModel.get(s.model) ?? []), i]));
  if (byModel.size === sources.length) return sources;
  const out: SourceConfig[] = [];
  for (const [model, idx] of byModel) {
    if (idx.length === 1) {
      out.push(sources[idx[0]]);
      continue;
    }
    const entries = idx.map((i) => sources[i]);
    const last = entries[entries.length - 1];
    const range = last.layerRange ? ` (layer_range [${last.layerRange.join(", ")}])` : "";
    r.ignore(
      [...segs, idx[0]],
      `model '${model}' is listed ${idx.length} times (entries ${idx.join(", ")}); mergekit keys inputs by model, so it is merged once, from its last entry${range}, and the earlier entries are ignored (per-model parameters come from the first entry that sets them); list distinct models to merge them all`,
      "this reproduces mergekit (--strict makes it an error)",
    );
    const merged: SourceConfig = { model };
    if (last.layerRange) merged.layerRange = last.layerRange;
    const params = firstSetScope(entries.map((e) => e.parameters));
    if (params) merged.parameters = params;
    if (last.vectors) merged.vectors = last.vectors;
    out.push(merged);
  }
  return out;
}

/**
 * One scope equivalent to looking a parameter up in `scopes` in order, first defined value wins:
 * a scalar or gradient is always defined, so it ends the search; a conditional list is defined only
 * when a filter matches, so the later scopes' settings are appended to it as fallbacks.
 */
function firstSetScope(scopes: readonly (ParamScope | undefined)[]): ParamScope | undefined {
  const out: ParamScope = {};
  for (const scope of scopes) {
    for (const [name, expr] of Object.entries(scope ?? {})) {
      const prev = out[name];
      if (prev === undefined) out[name] = expr;
      else if (isConditionalList(prev)) out[name] = [...prev, ...(isConditionalList(expr) ? expr : [{ value: expr as ParamValue | ParamValue[] }])];
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function isConditionalList(e: ParamExpr): e is ConditionalParam[] {
  return Array.isArray(e) && e.length > 0 && isObj(e[0]);
}
