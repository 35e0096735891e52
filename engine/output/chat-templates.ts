/**
 * The chat template names mergekit's `chat_template` accepts (mergekit/_data/chat_templates: alpaca,
 * chatml, exaone, llama3, mistral), besides "auto" and a literal Jinja template. The texts are data
 * files next to this module (`chat-templates/NAME.jinja`), written from each format's public
 * definition: chatml, llama3, alpaca and mistral render exactly what mergekit's bundled templates
 * render (mergekit's llama3 puts a newline after every <|eot_id|>); exaone renders the EXAONE format
 * without the stray indentation that mergekit's multi-line exaone template leaks into prompts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { ConfigError } from "../errors/index.js";

const DIR = new URL("./chat-templates/", import.meta.url);

let cache: Readonly<Record<string, string>> | undefined;

/** Built-in templates by name, read once from the data files. */
export function chatTemplates(): Readonly<Record<string, string>> {
  if (!cache) {
    const out: Record<string, string> = {};
    for (const f of readdirSync(DIR)
      .filter((n) => n.endsWith(".jinja"))
      .sort()) {
      out[f.slice(0, -".jinja".length)] = readFileSync(new URL(f, DIR), "utf8").replace(/\n+$/, "");
    }
    cache = out;
  }
  return cache;
}

/** Names `chat_template` accepts besides a literal template, for messages. */
export function chatTemplateNames(): string[] {
  return [...Object.keys(chatTemplates()), "auto"];
}

/**
 * Resolves a `chat_template` setting that is not "auto": a known name, or a literal template
 * (mergekit's rule: at least 20 characters and containing `{`). Throws for anything else, so the
 * config fails while planning, not after the merge.
 */
export function resolveChatTemplate(value: string): string {
  const named = chatTemplates()[value];
  if (named !== undefined) return named;
  if (value.length < 20 || !value.includes("{")) {
    throw new ConfigError("chat_template", `unknown chat template '${value}' (known: ${chatTemplateNames().join(", ")}, or a Jinja template string)`);
  }
  return value;
}
