/**
 * Credentials in NATS server URLs, as the nats CLI reads them: `nats://user:password@host:4222`
 * (user and password) and `nats://token@host:4222` (a token). nats.js ignores URL userinfo, so
 * it is taken out here, passed as connection options, and the URLs handed to nats.js (and shown
 * anywhere) carry no secret. `redactUrls` hides the userinfo of any URL inside a text.
 */

export interface NatsUrlCredentials {
  /** The server URLs without userinfo. */
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
}

const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^@/?#\s]*)@/i;

/** Splits credentials out of server URLs; the first URL that carries credentials supplies them. */
export function parseNatsUrls(urls: readonly string[]): NatsUrlCredentials {
  const out: NatsUrlCredentials = { servers: [] };
  let found = false;
  for (const url of urls) {
    const m = USERINFO.exec(url);
    if (!m) {
      out.servers.push(url);
      continue;
    }
    out.servers.push(m[1] + url.slice(m[0].length));
    if (found || !m[2]) continue;
    found = true;
    const colon = m[2].indexOf(":");
    if (colon < 0) out.token = decode(m[2]);
    else {
      out.user = decode(m[2].slice(0, colon));
      out.pass = decode(m[2].slice(colon + 1));
    }
  }
  return out;
}

/** Replaces the userinfo of every URL in `text` (`scheme://user:pass@` → `scheme://user:***@`, `scheme://token@` → `scheme://***@`). */
export function redactUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)([^@/?#\s]*)@/gi, (_all, scheme: string, info: string) => {
    const colon = info.indexOf(":");
    return colon < 0 ? `${scheme}***@` : `${scheme}${info.slice(0, colon)}:***@`;
  });
}

/** Redacts URLs and every occurrence of the given secrets (passwords, tokens) in `text`. */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let s = redactUrls(text);
  for (const secret of secrets) {
    if (!secret) continue;
    s = s.split(secret).join("***");
    const enc = encodeURIComponent(secret);
    if (enc !== secret) s = s.split(enc).join("***");
  }
  return s;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
