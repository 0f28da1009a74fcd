import * as path from "node:path"
import { defineConfig } from "vitest/config"

/** The configuration every package's `vitest.config.ts` extends. */
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: [path.join(import.meta.dirname, "vitest.setup.ts")],
    globalSetup: [path.join(import.meta.dirname, "vitest.global.ts")],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fakeTimers: { toFake: undefined }
  }
})
