/**
 * The redaction hook: every text an execution record stores (call inputs and outputs, error messages) passes
 * through it before it is cut to length and stored. The default masks what looks like a credential: bearer and
 * basic tokens, API keys (`sk-…`, `AKIA…`, GitHub, Slack, Google), JWTs, passwords in URLs, and the values of
 * `authorization` / `api_key` / `secret` / `password` / `cookie` / `*_token`-like fields, in JSON, headers or `k=v`
 * form.
 */

/** Rewrites a text before it is stored. Must be total and fast; it runs off the request path. */
export type Redactor = (text: string) => string

/** What replaces a secret. */
export const MASK = "[REDACTED]"

/** A pattern and what replaces each match (`MASK` when not given). */
export interface Rule {
  readonly pattern: RegExp
  readonly replace?: string | ((match: string, ...groups: Array<string>) => string) | undefined
}

const fieldNames = "[\\w-]*?(?:authorization|api[-_]?key|apikey|secret|passw(?:or)?d|passphrase|cookie|credential|" +
  "(?:access|refresh|auth|id|bearer|session|csrf|xsrf)[-_]?token|private[-_]?key)[\\w-]*|token"

/** Values of credential-like fields: `"api_key": "…"`, `authorization: Bearer …`, `password=…`. */
export const fieldRule: Rule = {
  pattern: new RegExp(
    `(["']?)(?<![\\w-])(${fieldNames})(?![\\w-])\\1(\\s*[:=]\\s*)` +
      `("(?:[^"\\\\]|\\\\.)*"|'(?:[^'\\\\]|\\\\.)*'|(?:Bearer|Basic|Token|Bot)\\s+[^\\s,;&}\\]"']+|[^\\s,;&}\\]"']+)`,
    "gi"
  ),
  replace: (_match, quote, name, separator, value) => {
    const masked = value!.startsWith("\"") ? `"${MASK}"` : value!.startsWith("'") ? `'${MASK}'` : MASK
    return `${quote}${name}${quote}${separator}${masked}`
  }
}

/** The rules `defaults` applies, in order. */
export const defaultRules: ReadonlyArray<Rule> = [
  fieldRule,
  { pattern: /\b(Bearer)\s+[A-Za-z0-9\-._~+/]+=*/gi, replace: (_m, scheme) => `${scheme} ${MASK}` },
  { pattern: /\b(Basic)\s+[A-Za-z0-9+/]{8,}={0,2}/g, replace: (_m, scheme) => `${scheme} ${MASK}` },
  { pattern: /\bsk-[A-Za-z0-9_-]{16,}/g },
  { pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { pattern: /\bgh[pousr]_[A-Za-z0-9]{30,}/g },
  { pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,}/g },
  { pattern: /\bAIza[0-9A-Za-z_-]{35}/g },
  { pattern: /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g },
  { pattern: /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s/@]+@/gi, replace: (_m, prefix) => `${prefix}${MASK}@` }
]

/** A redactor applying `rules` in order. */
export const make = (rules: ReadonlyArray<Rule>): Redactor => (text) => {
  let out = text
  for (const rule of rules) {
    const replace = rule.replace ?? MASK
    out = typeof replace === "string" ? out.replace(rule.pattern, replace) : out.replace(rule.pattern, replace)
  }
  return out
}

/** The default redactor: `defaultRules`. */
export const defaults: Redactor = make(defaultRules)

/** A redactor that changes nothing. */
export const none: Redactor = (text) => text

/** Applies redactors one after the other. */
export const compose = (...redactors: ReadonlyArray<Redactor>): Redactor => (text) =>
  redactors.reduce((out, redact) => redact(out), text)
