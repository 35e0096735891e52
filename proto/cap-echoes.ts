/**
 * Caps values echoed into messages. A 10 MB `merge_method` must not become a 10 MB error line,
 * and every message passes through one of three places — the MergeloomError constructor, the CLI
 * error printer and the warning renderer — so the cap is applied there once instead of at each of
 * the many sites that quote a config value.
 */

/** Longest echoed value kept whole; longer ones keep their head and tail around an ellipsis. */
export const MAX_ECHO = 80;
/** Unquoted tokens (JSON of a mapping, a bare path) are capped past this length. */
const MAX_TOKEN = 120;
/** Paths are what the user needs to find the file: kept whole up to this length. */
const MAX_PATH = 1024;
/** A whole message past this keeps its head and its tail (where the fix usually is). */
const MAX_MESSAGE = 2000;

export function capText(s: string, max = MAX_ECHO): string {
  if (s.length <= max) return s;
  const head = Math.ceil((max - 1) * 0.6);
  const tail = max - 1 - head;
  return `${s.slice(0, head)}…${s.slice(s.length - tail)}`;
}

// A quote opens only after a boundary and closes only before one, so the apostrophe of
// "the graph's" is not mistaken for the end of a quoted value.
const OPEN = "(?<=^|[\\s(\\[{=:,])";
const CLOSE = "(?=$|[\\s)\\]},.;:!?])";
const QUOTED = new RegExp(`${OPEN}(?:'([^'\\n]{81,}?)'|"((?:[^"\\\\\\n]|\\\\.){81,}?)"|\`([^\`\\n]{81,}?)\`)${CLOSE}`, "g");
const LONG_TOKEN = new RegExp(`[^\\s'"\`]{${MAX_TOKEN + 1},}`, "g");

function isPathLike(s: string): boolean {
  // A bare path may stand in parentheses or end a clause: look past that punctuation.
  const p = s.replace(/^[([{]+/, "").replace(/[)\]},.;:]+$/, "");
  return p.length <= MAX_PATH && /^(\.{0,2}\/|[A-Za-z][\w+.-]*:\/\/)[^\s]*$/.test(p);
}

/** Shortens every quoted value over MAX_ECHO characters, every unquoted token over MAX_TOKEN, and the whole message over MAX_MESSAGE. */
export function capEchoes(message: string): string {
  if (message.length <= MAX_ECHO) return message;
  let m = message.replace(QUOTED, (whole: string, a?: string, b?: string, c?: string) => {
    const q = whole[0];
    const inner = a ?? b ?? c ?? "";
    if (isPathLike(inner)) return whole;
    return `${q}${capText(inner)}${q} (${inner.length} characters)`;
  });
  m = m.replace(LONG_TOKEN, (t) => (isPathLike(t) ? t : capText(t)));
  if (m.length > MAX_MESSAGE) m = `${m.slice(0, 1200)} … ${m.length - 1700} characters left out … ${m.slice(m.length - 500)}`;
  return m;
}
