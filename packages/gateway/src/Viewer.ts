/**
 * The trace viewer: the page in `viewer/index.html` (plain HTML, CSS and a module script, no build step), read once
 * when the gateway's layer is built and answered by `GET /` and `GET /traces/:trace_id`. Its only data comes from
 * the public `/api/traces` routes, and it shows every value as text.
 *
 * The page goes out as one document with a strict Content-Security-Policy: nothing from other origins, no inline
 * script or style but the page's own (allowed by their SHA-256 hashes, computed here from the file as served), data
 * fetched only from the gateway itself.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"

/** The viewer page could not be read (a broken installation: the file ships with the package). */
export class ViewerUnavailable extends Schema.TaggedError<ViewerUnavailable>("@sg/gateway/ViewerUnavailable")(
  "ViewerUnavailable",
  { path: Schema.String, message: Schema.String, cause: Schema.optional(Schema.Defect) }
) {}

/** Where the page lives: `viewer/index.html` in this package, found from this module's own URL. */
export const pageUrl: URL = new URL("../viewer/index.html", import.meta.url)

/** The page's content type. */
export const contentType = "text/html; charset=utf-8"

/** The page, ready to serve. */
export interface Page {
  /** The HTML as served (line endings normalized to LF, as the browser's parser does before hashing). */
  readonly html: Uint8Array
  /** The Content-Security-Policy it is served with. */
  readonly contentSecurityPolicy: string
}

const inlineScript = /<script\b(?![^>]*\bsrc\s*=)[^>]*>([\s\S]*?)<\/script\s*>/gi
const inlineStyle = /<style\b[^>]*>([\s\S]*?)<\/style\s*>/gi

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("base64")

const hashesOf = (html: string, pattern: RegExp): Array<string> =>
  Array.from(html.matchAll(pattern), (match) => `'sha256-${sha256(match[1]!)}'`)

/**
 * The Content-Security-Policy for a page: its own inline scripts and styles by hash (so no injected one runs),
 * `fetch` to this origin only, no plugins, frames, forms elsewhere, or `<base>`.
 */
export const contentSecurityPolicyOf = (html: string): string => {
  const scripts = hashesOf(html, inlineScript)
  const styles = hashesOf(html, inlineStyle)
  return [
    "default-src 'none'",
    `script-src ${scripts.length > 0 ? scripts.join(" ") : "'none'"}`,
    `style-src ${styles.length > 0 ? styles.join(" ") : "'none'"}`,
    "connect-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; ")
}

/** A page from its HTML text. */
export const fromHtml = (text: string): Page => {
  const html = text.replace(/\r\n?/g, "\n")
  return { html: new TextEncoder().encode(html), contentSecurityPolicy: contentSecurityPolicyOf(html) }
}

/** Reads the page (by default the package's own, `pageUrl`). */
export const load = (
  url: URL = pageUrl
): Effect.Effect<Page, ViewerUnavailable, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = yield* path.fromFileUrl(url)
    const text = yield* fs.readFileString(file, "utf-8")
    return fromHtml(text)
  }).pipe(
    Effect.mapError((cause) =>
      new ViewerUnavailable({
        path: url.href,
        message: `the trace viewer page cannot be read from ${url.href}: ${cause.message}`,
        cause
      })
    ),
    Effect.withSpan("Viewer.load")
  )

/** The page as an HTTP response, with its security headers. */
export const respond = (page: Page): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.uint8Array(page.html, {
    contentType,
    headers: {
      "content-security-policy": page.contentSecurityPolicy,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cache-control": "no-cache"
    }
  })
