import { describe, expect, it } from "@effect/vitest"
import { CircuitBreaker } from "@sg/resilience"
import { CurrentTrace, TraceLifecycle, TraceStore, TraceStoreUnavailable } from "@sg/trace"
import { Context, Effect, Exit, Fiber, Layer, Metric, Option, Scope, TestClock } from "effect"
import { nextTraceId } from "./utils/ids.js"

/** How the store under the lifecycle behaves right now. */
type Mode = "ok" | "down" | "stalled"

class StoreMode extends Context.Tag("test/StoreMode")<StoreMode, {
  mode: Mode
  /** Every write that reached the memory store, in order. */
  readonly landed: Array<string>
}>() {}

/** The memory store behind a switch: `down` fails every write at once, `stalled` answers after 10 seconds. */
const switchable = Layer.effect(
  TraceStore.TraceStore,
  Effect.gen(function*() {
    const inner = yield* TraceStore.TraceStore
    const control = yield* StoreMode
    const gate = <A, E>(what: string, self: Effect.Effect<A, E>) =>
      Effect.suspend((): Effect.Effect<A, E | TraceStoreUnavailable> => {
        switch (control.mode) {
          case "down":
            return Effect.fail(new TraceStoreUnavailable({ operation: what, message: "connection refused" }))
          case "stalled":
            return Effect.zipRight(
              Effect.sleep("10 seconds"),
              Effect.tap(self, () => Effect.sync(() => void control.landed.push(what)))
            )
          case "ok":
            return Effect.tap(self, () => Effect.sync(() => void control.landed.push(what)))
        }
      })
    return TraceStore.TraceStore.of({
      ...inner,
      create: (id, state, metadata, options) => gate(`create ${state}`, inner.create(id, state, metadata, options)),
      transition: (id, state, options) => gate(`transition ${state}`, inner.transition(id, state, options)),
      finish: (id, state, fields, options) => gate(`finish ${state}`, inner.finish(id, state, fields, options))
    })
  })
).pipe(
  Layer.provideMerge(TraceStore.layerMemory),
  Layer.provideMerge(Layer.sync(StoreMode, () => ({ mode: "ok" as Mode, landed: [] })))
)

const breakers = CircuitBreaker.layer({ policies: TraceLifecycle.breakerPolicy("1 second") }).pipe(Layer.orDie)

const setMode = (mode: Mode) => Effect.map(StoreMode, (control) => void (control.mode = mode))

/** One request's writes, as the gateway makes them. */
const request = (id: ReturnType<typeof nextTraceId>, outcome: "COMPLETED" | "ERRORED" = "COMPLETED") =>
  Effect.gen(function*() {
    const lifecycle = yield* TraceLifecycle.TraceLifecycle
    const lane = yield* lifecycle.begin(id)
    yield* lifecycle.transition("INFERRING").pipe(CurrentTrace.withTraceId(id, lane))
    yield* lifecycle.finish(lane, outcome)
  })

const lost = (reason: string) =>
  Metric.value(Metric.tagged(Metric.tagged(TraceLifecycle.writesLost, "operation", "create"), "reason", reason))

const withLifecycle = (options?: TraceLifecycle.Options) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        TraceLifecycle.layer(options).pipe(Layer.provideMerge(Layer.merge(switchable, breakers))),
        scope
      )
      const exit = yield* Effect.exit(Effect.provide(self, context))
      // Closing flushes the queue, on the test's clock: let it run out.
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(closing)
      return yield* exit
    })

describe("TraceLifecycle", () => {
  it.effect("a stalled store holds a request for the deadline once, then its writes go on in the background", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* setMode("stalled")
      // Uninterruptible, as the HTTP server runs its middleware: the deadline must hold there too.
      const fiber = yield* Effect.fork(Effect.uninterruptible(request(id)))
      yield* TestClock.adjust("49 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      // The create missed the deadline: the transition and finish after it do not wait at all.
      expect(Exit.isSuccess(yield* Fiber.await(fiber))).toBe(true)
      expect(yield* store.get(id)).toEqual(Option.none())
      yield* setMode("ok")
      yield* TestClock.adjust("10 seconds")
      const record = Option.getOrThrow(yield* store.get(id))
      expect(record.state).toBe("COMPLETED")
      expect(yield* store.isActive(id)).toBe(false)
      expect((yield* StoreMode).landed).toEqual(["create RECEIVED", "transition INFERRING", "finish COMPLETED"])
    }).pipe(withLifecycle()))

  it.effect("begin and transition hand their writes to the lane and return; finish waits for all of them", () =>
    Effect.gen(function*() {
      const lifecycle = yield* TraceLifecycle.TraceLifecycle
      const id = nextTraceId()
      yield* setMode("stalled")
      const lane = yield* lifecycle.begin(id)
      yield* lifecycle.transition("INFERRING").pipe(CurrentTrace.withTraceId(id, lane))
      expect((yield* lifecycle.stats).pending).toBe(2)
      // The lane's fiber takes the create to the stalled store.
      yield* TestClock.adjust("1 millis")
      expect((yield* lifecycle.stats).pending).toBe(2)
      yield* setMode("ok")
      const finishing = yield* Effect.fork(lifecycle.finish(lane, "COMPLETED"))
      // The stalled create answers after 10 s: finish waits its deadline (50 ms) for the lane, not a write's worth each.
      yield* TestClock.adjust("49 millis")
      expect(finishing.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(finishing)
      yield* TestClock.adjust("10 seconds")
      expect((yield* StoreMode).landed).toEqual(["create RECEIVED", "transition INFERRING", "finish COMPLETED"])
      expect(yield* lifecycle.stats).toEqual({ pending: 0, queued: 0, running: 0 })
    }).pipe(withLifecycle()))

  it.effect("a store that answers in time holds nothing back: the write has landed when the call returns", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* request(id)
      expect(Option.map(yield* store.get(id), (r) => r.state)).toEqual(Option.some("COMPLETED"))
      expect(yield* (yield* TraceLifecycle.TraceLifecycle).stats).toEqual({ pending: 0, queued: 0, running: 0 })
    }).pipe(withLifecycle()))

  it.effect("writes the store could not take are queued and replayed in order once it answers: nothing left in flight", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const lifecycle = yield* TraceLifecycle.TraceLifecycle
      const breakers = yield* CircuitBreaker.CircuitBreaker
      const ids = Array.from({ length: 5 }, () => nextTraceId())
      yield* setMode("down")
      for (const id of ids) yield* request(id, id === ids[2] ? "ERRORED" : "COMPLETED")
      expect((yield* breakers.status(TraceLifecycle.breakerName)).state).toBe("open")
      expect((yield* lifecycle.stats).queued).toBe(15)
      expect(yield* store.activeCount).toBe(0)
      yield* setMode("ok")
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      expect((yield* lifecycle.stats).queued).toBe(0)
      for (const id of ids) {
        expect(Option.map(yield* store.get(id), (r) => r.state)).toEqual(
          Option.some(id === ids[2] ? "ERRORED" : "COMPLETED")
        )
      }
      expect(yield* store.activeCount).toBe(0)
      const order = (yield* StoreMode).landed
      expect(order.slice(0, 3)).toEqual(["create RECEIVED", "transition INFERRING", "finish COMPLETED"])
      expect(order).toHaveLength(15)
    }).pipe(withLifecycle()))

  it.effect("a request's writes after a queued one queue behind it, even once the store is back", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const lifecycle = yield* TraceLifecycle.TraceLifecycle
      const id = nextTraceId()
      yield* setMode("down")
      const lane = yield* lifecycle.begin(id)
      // The replayer tries the queued create while the store is still down, and waits to retry.
      yield* TestClock.adjust("1 millis")
      yield* setMode("ok")
      // The store answers again, but this request's create is still queued: its finish must not go first.
      yield* lifecycle.finish(lane, "COMPLETED")
      expect(yield* store.get(id)).toEqual(Option.none())
      yield* TestClock.adjust("2 seconds")
      expect(Option.map(yield* store.get(id), (r) => r.state)).toEqual(Option.some("COMPLETED"))
      expect(yield* store.isActive(id)).toBe(false)
    }).pipe(withLifecycle()))

  it.effect("the queue is bounded: past its capacity writes are lost and counted", () =>
    Effect.gen(function*() {
      const lifecycle = yield* TraceLifecycle.TraceLifecycle
      const before = (yield* lost("queue_full")).count
      yield* setMode("down")
      for (let i = 0; i < 5; i++) yield* lifecycle.begin(nextTraceId())
      // `begin` returns before its write is attempted: let the lanes drain.
      const stats = yield* lifecycle.stats.pipe(
        Effect.zipLeft(Effect.yieldNow()),
        Effect.repeat({ until: (s) => s.pending === 0, times: 100 })
      )
      expect(stats.queued).toBe(2)
      expect((yield* lost("queue_full")).count - before).toBe(3)
    }).pipe(withLifecycle({ queueCapacity: 2 })))

  it.effect("closing the scope with writes still on their lanes: they join the queue and the flush lands them", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        TraceLifecycle.layer({ flushTimeout: "3 seconds" }).pipe(Layer.provideMerge(Layer.merge(switchable, breakers))),
        scope
      )
      const control = Context.get(context, StoreMode)
      const lifecycle = Context.get(context, TraceLifecycle.TraceLifecycle)
      const id = nextTraceId()
      control.mode = "stalled"
      const lane = yield* lifecycle.begin(id)
      yield* lifecycle.transition("INFERRING").pipe(CurrentTrace.withTraceId(id, lane))
      // The create is out to the stalled store, the transition waits behind it on the lane.
      yield* TestClock.adjust("1 millis")
      expect((yield* lifecycle.stats).pending).toBe(2)
      const before = (yield* lost("shutdown")).count
      control.mode = "ok"
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(closing)
      const record = Option.getOrThrow(yield* Context.get(context, TraceStore.TraceStore).get(id))
      expect(record.state).toBe("INFERRING")
      expect(control.landed).toEqual(["create RECEIVED", "transition INFERRING"])
      expect((yield* lost("shutdown")).count).toBe(before)
    }))

  it.effect("closing the scope replays what is queued, and counts what it could not", () =>
    Effect.gen(function*() {
      const run = (recoverAfter: "500 millis" | "never") =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(
            TraceLifecycle.layer({ flushTimeout: "3 seconds" }).pipe(Layer.provideMerge(Layer.merge(switchable, breakers))),
            scope
          )
          const control = Context.get(context, StoreMode)
          const id = nextTraceId()
          control.mode = "down"
          yield* request(id).pipe(Effect.provide(context))
          const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
          if (recoverAfter !== "never") {
            yield* TestClock.adjust(recoverAfter)
            control.mode = "ok"
          }
          yield* TestClock.adjust("3 seconds")
          yield* Fiber.join(closing)
          return yield* Context.get(context, TraceStore.TraceStore).get(id)
        })
      const before = (yield* lost("shutdown")).count
      expect(Option.map(yield* run("500 millis"), (r) => r.state)).toEqual(Option.some("COMPLETED"))
      expect((yield* lost("shutdown")).count).toBe(before)
      expect(yield* run("never")).toEqual(Option.none())
      expect((yield* lost("shutdown")).count - before).toBe(1)
    }))
})
