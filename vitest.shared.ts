import * as path from "node:path"
import { defineConfig } from "vitest/config"

/** Workspace packages resolve to their sources (the `@sg/source` export condition): no rebuild to test an edit. */
const conditions = ["@sg/source", "import", "module", "node", "default"]

/** The configuration every package's `vitest.config.ts` extends. */
export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: [path.join(import.meta.dirname, "vitest.setup.ts")],
    globalSetup: [path.join(import.meta.dirname, "vitest.global.ts")],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fakeTimers: { toFake: undefined }
  }
})
