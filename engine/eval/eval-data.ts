/**
 * Evaluation data for the arith-llama family: a character tokenizer built from `vocab.json` and
 * JSONL eval sets (`{"prompt": ..., "answer": ...}` per line), tokenized at load time so that a bad
 * line or an unknown character is reported with its file and line before any model runs.
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";

const SPECIALS = ["<pad>", "<bos>", "<eos>"] as const;

/** One token per character, no normalisation; `<pad>`, `<bos>` and `<eos>` are whole-word specials. */
export class CharTokenizer {
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Number of rows the logits have: max id + 1. */
  readonly vocabSize: number;
  private readonly ids: ReadonlyMap<string, number>;

  private constructor(
    readonly source: string,
    ids: Map<string, number>,
  ) {
    this.ids = ids;
    this.padId = ids.get("<pad>")!;
    this.bosId = ids.get("<bos>")!;
    this.eosId = ids.get("<eos>")!;
    this.vocabSize = Math.max(...ids.values()) + 1;
  }

  /** Builds a tokenizer from a parsed `{token: id}` object; `source` names it in errors. */
  static fromVocab(vocab: unknown, source = "vocab"): CharTokenizer {
    if (vocab === null || typeof vocab !== "object" || Array.isArray(vocab)) {
      throw evalDataError(`load vocabulary ${source}: expected a JSON object {token: id}`);
    }
    const ids = new Map<string, number>();
    const seen = new Map<number, string>();
    for (const [tok, id] of Object.entries(vocab as Record<string, unknown>)) {
      if (!Number.isSafeInteger(id) || (id as number) < 0) {
        throw evalDataError(`load vocabulary ${source}: token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}; ids must be non-negative integers`);
      }
      if (!SPECIALS.includes(tok as (typeof SPECIALS)[number]) && [...tok].length !== 1) {
        throw evalDataError(
          `load vocabulary ${source}: token ${JSON.stringify(tok)} is neither one character nor one of ${SPECIALS.join(", ")}; only character-level vocabularies are supported`,
        );
      }
      const prev = seen.get(id as number);
      if (prev !== undefined) throw evalDataError(`load vocabulary ${source}: tokens ${JSON.stringify(prev)} and ${JSON.stringify(tok)} share id ${id}`);
      seen.set(id as number, tok);
      ids.set(tok, id as number);
    }
    for (const s of SPECIALS) {
      if (!ids.has(s)) throw evalDataError(`load vocabulary ${source}: special token ${s} is missing (required: ${SPECIALS.join(", ")})`);
    }
    return new CharTokenizer(source, ids);
  }

  static async fromVocabFile(path: string): Promise<CharTokenizer> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      throw evalDataError(`load vocabulary ${path}: ${(err as Error).message}`, err);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw evalDataError(`load vocabulary ${path}: not valid JSON (${(err as Error).message})`, err);
    }
    return CharTokenizer.fromVocab(raw, path);
  }

  /** Character ids of `text` (no specials). `where` (e.g. `add.jsonl:17 prompt`) names the text in errors. */
  encode(text: string, where = "text"): number[] {
    const out: number[] = [];
    let col = 0;
    for (const ch of text) {
      col++;
      const id = this.ids.get(ch);
      if (id === undefined || SPECIALS.includes(ch as (typeof SPECIALS)[number])) {
        const cp = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
        throw evalDataError(
          `tokenize ${where}: character ${JSON.stringify(ch)} (${cp}) at position ${col} is not in the vocabulary ${this.source} (known: ${this.characters().join(" ")})`,
        );
      }
      out.push(id);
    }
    return out;
  }

  /** Single-character tokens, in id order. */
  characters(): string[] {
    return [...this.ids.entries()]
      .filter(([t]) => !SPECIALS.includes(t as (typeof SPECIALS)[number]))
      .sort((a, b) => a[1] - b[1])
      .map(([t]) => t);
  }
}

export interface EvalExample {
  prompt: string;
  answer: string;
  /** 1-based line in the source file. */
  line: number;
  /** `[<bos>] + prompt + answer + [<eos>]`. */
  tokens: Int32Array;
  /** Characters in the prompt (P in the scoring rule). */
  promptLength: number;
  /** Characters in the answer (A in the scoring rule). */
  answerLength: number;
}

export interface EvalSet {
  /** File basename without `.jsonl` (the task name). */
  name: string;
  file: string;
  examples: EvalExample[];
  /** Id used to right-pad batches (`<pad>`); scored logits never depend on it (causal attention). */
  padId?: number;
}

/** Tokenizes one labelled example as the scoring rule builds it. */
export function encodeExample(tok: CharTokenizer, prompt: string, answer: string, line: number, where: string): EvalExample {
  const p = tok.encode(prompt, `${where} prompt`);
  const a = tok.encode(answer, `${where} answer`);
  const tokens = new Int32Array(p.length + a.length + 2);
  tokens[0] = tok.bosId;
  tokens.set(p, 1);
  tokens.set(a, 1 + p.length);
  tokens[tokens.length - 1] = tok.eosId;
  return { prompt, answer, line, tokens, promptLength: p.length, answerLength: a.length };
}

/** Parses JSONL text; `file` is used for the set's name and in errors. Blank lines are skipped. */
export function parseEvalJsonl(text: string, file: string, tok: CharTokenizer): EvalSet {
  const examples: EvalExample[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const lineText = lines[i].trim();
    if (lineText === "") continue;
    const where = `${file}:${i + 1}`;
    let raw: unknown;
    try {
      raw = JSON.parse(lineText);
    } catch (err) {
      throw evalDataError(`load eval data ${where}: not valid JSON (${(err as Error).message}); each line must be {"prompt": "...", "answer": "..."}`, err);
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw evalDataError(`load eval data ${where}: expected an object {"prompt": "...", "answer": "..."}, got ${JSON.stringify(raw)}`);
    }
    const { prompt, answer } = raw as { prompt?: unknown; answer?: unknown };
    for (const [field, v] of [
      ["prompt", prompt],
      ["answer", answer],
    ] as const) {
      if (typeof v !== "string") {
        throw evalDataError(
          `load eval data ${where}: field "${field}" is ${v === undefined ? "missing" : `not a string (${JSON.stringify(v)})`}; each line must be {"prompt": "...", "answer": "..."}`,
        );
      }
    }
    examples.push(encodeExample(tok, prompt as string, answer as string, i + 1, where));
  }
  if (examples.length === 0) throw evalDataError(`load eval data ${file}: the file has no examples`);
  return { name: basename(file).replace(/\.jsonl$/, ""), file, examples, padId: tok.padId };
}

export async function loadEvalSet(file: string, tok: CharTokenizer): Promise<EvalSet> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw evalDataError(`load eval data ${file}: ${(err as Error).message}`, err);
  }
  return parseEvalJsonl(text, file, tok);
}

function evalDataError(message: string, cause?: unknown): MergeloomError {
  return new MergeloomError("EVAL_FAILED", message, cause === undefined ? {} : { cause });
}
