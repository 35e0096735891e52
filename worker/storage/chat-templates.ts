/**
 * The chat template names mergekit's `chat_template` accepts, besides "auto" and a literal Jinja
 * template. chatml, llama3 and alpaca render exactly what mergekit's bundled templates render
 * (checked with jinja2 under transformers' trim_blocks/lstrip_blocks settings; mergekit's llama3
 * puts a newline after every <|eot_id|>); exaone renders the EXAONE format without the stray
 * indentation that mergekit's multi-line exaone template leaks into prompts.
 */
import { ConfigError } from "../../proto/errors.js";

export const CHAT_TEMPLATES: Readonly<Record<string, string>> = {
  alpaca:
    "{% set sys = messages | selectattr('role', 'equalto', 'system') | list %}" +
    "{{ (sys | last).content | trim if sys else '' }}{{ '\\n\\n' }}" +
    "{% for m in messages %}" +
    "{% set head = {'user': '### Instruction:', 'assistant': '### Response:', 'user_context': '### Input:'}.get(m['role']) %}" +
    "{% if head %}{{ head + '\\n' + (m['content'] | trim) }}{% if not loop.last %}{{ '\\n\\n' }}{% endif %}{% endif %}" +
    "{% endfor %}" +
    "{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{ '### Response:\\n' }}{% endif %}",
  chatml:
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  exaone:
    "{%- for m in messages %}" +
    "{%- if loop.first and m['role'] != 'system' %}{{ '[|system|][|endofturn|]\\n' }}{% endif %}" +
    "{{- '[|' + m['role'] + '|]' + m['content'] }}" +
    "{{- '\\n' if m['role'] == 'user' else '[|endofturn|]\\n' }}" +
    "{%- endfor %}" +
    "{%- if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}",
  llama3:
    "{%- for m in messages %}" +
    "{%- if loop.first %}{{ bos_token }}{% endif %}" +
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + (m['content'] | trim) + '<|eot_id|>\\n' }}" +
    "{%- endfor %}" +
    "{%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
};

/**
 * Resolves a `chat_template` setting that is not "auto": a known name, or a literal template
 * (mergekit's rule: at least 20 characters and containing `{`).
 */
export function resolveChatTemplate(value: string): string {
  const named = CHAT_TEMPLATES[value];
  if (named !== undefined) return named;
  if (value.length < 20 || !value.includes("{")) {
    throw new ConfigError("chat_template", `unknown chat template '${value}' (known: ${[...Object.keys(CHAT_TEMPLATES), "auto"].join(", ")}, or a Jinja template string)`);
  }
  return value;
}
