/**
 * Headless Chromium for the browser tests: Debian's `chromium` package (`npx playwright install` cannot download
 * here), driven by `playwright-core`. `.ci/run` installs it when it is missing.
 */
import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import { type Browser as PlaywrightBrowser, chromium } from "playwright-core"

/** Where Debian's `chromium` package puts the browser. */
export const executablePath = "/usr/bin/chromium"

/** Why the browser tests cannot run here, or undefined when they can. */
export const missing = (): string | undefined => {
  try {
    Fs.accessSync(executablePath, Fs.constants.X_OK)
    return undefined
  } catch {
    return `no Chromium at ${executablePath}: install Debian's package (apt-get install chromium) to run them`
  }
}

/** A launched headless Chromium, closed with its scope. */
export class Browser extends Context.Tag("test/gateway/Browser")<Browser, PlaywrightBrowser>() {}

/** Launches Chromium headless, sandbox off (root in a container), no network of its own. */
export const layer = Layer.scoped(
  Browser,
  Effect.acquireRelease(
    Effect.tryPromise(() =>
      chromium.launch({
        executablePath,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
          "--disable-quic"
        ]
      })
    ),
    (browser) => Effect.promise(() => browser.close())
  )
)
