/**
 * Trace ids per second: sg's UUIDv7 core, the `TraceIdGenerator` service in an Effect loop, `uuid`'s v7 (bare, and
 * in the same Effect loop, as a user of `uuid` would mint ids in an Effect program) and `crypto.randomUUID` (v4: the
 * speed limit for 122 random bits), in one run. The goal is judged on the public service against `uuid` v7 in the
 * same loop. The core's output is checked for strict order over its whole measured run.
 */
import { randomFillSync, randomUUID } from "node:crypto"
import { makeGenerator } from "../packages/trace/src/internal/uuidv7.js"
import { TraceIdGenerator } from "@sg/trace"
import { Effect } from "effect"
import { v7 } from "uuid"
import { measure, report } from "./harness.js"

const batch = 10_000

export const run = async (): Promise<void> => {
  let sink = ""

  // The core as the service uses it: the wall clock read for every id. The raw run compares ids only at batch
  // boundaries (one in 10,000); the checked run compares every id with the one before, inside the timed loop.
  const core = makeGenerator({ random: randomFillSync })
  let batches = 0
  let batchesOutOfOrder = 0
  const coreFigure = await measure("sg core", batch, () => {
    const first = core(Date.now())
    if (first <= sink) batchesOutOfOrder++
    for (let i = 1; i < batch; i++) sink = core(Date.now())
    batches++
  })

  const checkedCore = makeGenerator({ random: randomFillSync })
  let last = ""
  let checked = 0
  let outOfOrder = 0
  const checkedFigure = await measure("sg core, every id checked", batch, () => {
    for (let i = 0; i < batch; i++) {
      const id = checkedCore(Date.now())
      if (id <= last) outOfOrder++
      last = id
    }
    checked += batch
  })

  const service = Effect.runSync(TraceIdGenerator.make)
  const effectLoop = (next: Effect.Effect<string>) =>
    Effect.suspend(() => {
      let i = 0
      return Effect.whileLoop({
        while: () => i < batch,
        body: () => next,
        step: (id) => {
          sink = id
          i++
        }
      })
    })
  const serviceLoop = effectLoop(service.next)
  const serviceFigure = await measure("TraceIdGenerator.next (Effect loop)", batch, () => Effect.runSync(serviceLoop))
  // What a user of `uuid` writes in an Effect program: the same loop, `v7` in `Effect.sync`.
  const uuidLoop = effectLoop(Effect.sync(() => v7()))
  const uuidEffectFigure = await measure("uuid v7 (Effect loop)", batch, () => Effect.runSync(uuidLoop))

  const uuidFigure = await measure("uuid v7", batch, () => {
    for (let i = 0; i < batch; i++) sink = v7()
  })
  const randomUUIDFigure = await measure("crypto.randomUUID (v4)", batch, () => {
    for (let i = 0; i < batch; i++) sink = randomUUID()
  })

  const order = (bad: number, of: number, what: string) =>
    bad === 0 ? `increasing over ${of} ${what}` : `${bad} of ${of} ${what} OUT OF ORDER`
  report("trace ids per second", [
    { ...coreFigure, extra: { order: order(batchesOutOfOrder, batches, "batches") } },
    { ...checkedFigure, extra: { order: order(outOfOrder, checked, "ids") } },
    serviceFigure,
    uuidEffectFigure,
    uuidFigure,
    randomUUIDFigure
  ], "uuid v7")
  const ratio = serviceFigure.opsPerSec / uuidEffectFigure.opsPerSec
  console.log(
    `goal: TraceIdGenerator.next ≥ 3x uuid v7, both in an Effect loop: ${ratio.toFixed(2)}x ` +
      `(${ratio >= 3 ? "met" : "MISSED"}); the bare core ${(coreFigure.opsPerSec / uuidFigure.opsPerSec).toFixed(2)}x ` +
      "bare uuid v7"
  )
  console.log(`sg core monotonic over the measured runs: ${batchesOutOfOrder + outOfOrder === 0 ? "yes" : "NO"}`)
  if (sink.length !== 36) throw new Error(`unexpected id ${sink}`)
}
