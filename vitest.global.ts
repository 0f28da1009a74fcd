import { notFoundMessage } from "@sg/redis/RedisTestServer"
import { spawnSync } from "node:child_process"

/** Stops the whole run with one clear line when the tests have no Redis to talk to. */
export default function setup(): void {
  if (process.env["REDIS_URL"]) return
  if (spawnSync("redis-server", ["--version"], { stdio: "ignore" }).error !== undefined) {
    process.stderr.write(`${notFoundMessage}\n`)
    process.exit(1)
  }
}
