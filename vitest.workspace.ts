import { defineWorkspace } from "vitest/config"

/** Every package's tests, run together by `pnpm test`. */
export default defineWorkspace([
  "packages/*/vitest.config.ts",
  "apps/*/vitest.config.ts",
  "examples/*/vitest.config.ts"
])
