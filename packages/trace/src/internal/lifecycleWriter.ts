/**
 * The machinery under `TraceLifecycle`: each request's writes run in order on a lane of their own, the request waits
 * for them at most a deadline (on `Clock`: once one write of a lane has missed it, the lane's later writes go on
 * without the request waiting), and a write the store could not take (an outage, or the trace store's
 * breaker open) goes to a bounded queue that one fiber replays, in order, once the store answers again. A request's
 * writes after a queued one queue behind it, so a trace's `create`, transitions and `finish` always land in order;
 * each carries the request's token, so a write that landed although its reply was lost counts once when replayed.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import type { RequestLane } from "../CurrentTrace.js"
import type { TraceId } from "../TraceId.js"

/** The outcome of one attempt at a write. */
export type Attempt = "done" | "refused" | "outage"

/** A write of a lane: the operation's name (for metrics and logs) and one attempt at it, given the lane. */
export interface Write {
  readonly operation: string
  readonly attempt: (lane: Lane) => Effect.Effect<Attempt>
}

/** One request's lane: its trace, its token, the opening its `create` got, and what of it is still pending. */
export class Lane implements RequestLane {
  opening: number | undefined = undefined
  /** The fiber of the lane's last submitted write: done once it has been attempted (or queued). */
  tail: Fiber.RuntimeFiber<void> | undefined = undefined
  /** Writes of this lane waiting in the replay queue. */
  queued = 0
  /** Whether a write of this lane missed the deadline: the request has waited its share, the rest go unwaited. */
  detached = false
  constructor(readonly traceId: TraceId, readonly request: string | undefined) {}
}

/** What the writer holds right now. */
export interface Stats {
  /** Writes waiting for the store to come back. */
  readonly queued: number
  /** Writes that missed a request's deadline and are still running. */
  readonly running: number
}

/** Writes that did not reach the store in time for their request, and went on in the background. */
export const writesDeferred = Metric.counter("sg_lifecycle_writes_deferred_total", {
  description: "trace lifecycle writes that outlasted SG_LIFECYCLE_DEADLINE and finished in the background",
  incremental: true
})

/** Writes queued because the store was away, and replayed from the queue once it answered. */
export const writesReplayed = Metric.counter("sg_lifecycle_writes_replayed_total", {
  description: "trace lifecycle writes replayed from the queue once the trace store answered again",
  incremental: true
})

/** Writes waiting in the replay queue. */
export const queueDepth = Metric.gauge("sg_lifecycle_queue_depth", {
  description: "trace lifecycle writes waiting for the trace store to come back"
})

/** The writer's settings. */
export interface Settings {
  readonly deadline: Duration.Duration
  readonly capacity: number
  /** How long the replayer waits before trying the head of the queue again after an outage. */
  readonly retry: Duration.Duration
  /** Called for each write lost: dropped because the queue was full, or left in it at shutdown. */
  readonly lost: (operation: string, reason: "queue_full" | "shutdown", lane: Lane) => Effect.Effect<void>
}

/** The writer: `submit` runs a write of a lane, `flush` replays what is queued, `stats` counts. */
export interface Writer {
  readonly submit: (lane: Lane, write: Write) => Effect.Effect<void>
  readonly flush: (within: Duration.Duration) => Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

interface Queued {
  readonly lane: Lane
  readonly write: Write
}

/**
 * A request waiting for one write: answered `true` when the write was attempted in time, `false` at its deadline. A
 * callback rather than a `Deferred`, whose construction (an object spread of its prototype) cost more than the rest of
 * the wait.
 */
interface Waiter {
  readonly at: number
  settled: boolean
  inTime: boolean
  resume: ((answer: Effect.Effect<boolean>) => void) | undefined
}

/** A writer whose background fibers live in `scope`. */
export const make = (settings: Settings): Effect.Effect<Writer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const queue: Array<Queued> = []
    const wake = yield* Effect.makeLatch(false)
    // One replay at a time (the replayer, or a flush): the head is attempted once and shifted once.
    const replaying = yield* Effect.makeSemaphore(1)
    let running = 0

    const enqueue = (lane: Lane, write: Write): Effect.Effect<void> => {
      if (queue.length >= settings.capacity) return settings.lost(write.operation, "queue_full", lane)
      queue.push({ lane, write })
      lane.queued++
      queueDepth.unsafeUpdate(queue.length, [])
      return wake.open
    }

    // One attempt, or straight to the queue when an earlier write of the lane is waiting there (order per trace).
    const run = (lane: Lane, write: Write): Effect.Effect<void> =>
      lane.queued > 0
        ? enqueue(lane, write)
        : Effect.flatMap(write.attempt(lane), (outcome) => outcome === "outage" ? enqueue(lane, write) : Effect.void)

    // Requests waiting for a write, in the order their deadlines fall (the deadline is the same for every write). One
    // fiber times them all out, rather than a timer per write: `Effect.timeoutTo` cost about 24 µs of CPU a write, a
    // third of what a traced request spent on its lifecycle (`pnpm bench gateway`).
    const waiting: Array<Waiter> = []
    const answeredInTime = Effect.succeed(true)
    const answeredLate = Effect.succeed(false)
    const timing = yield* Effect.makeLatch(false)
    const deadlineMs = Duration.toMillis(settings.deadline)
    const settle = (waiter: Waiter, inTime: boolean) => {
      if (waiter.settled) return
      waiter.settled = true
      waiter.inTime = inTime
      const resume = waiter.resume
      waiter.resume = undefined
      if (resume !== undefined) resume(inTime ? answeredInTime : answeredLate)
    }
    const answer = (waiter: Waiter): Effect.Effect<boolean> =>
      waiter.settled ? Effect.succeed(waiter.inTime) : Effect.async<boolean>((resume) => {
        waiter.resume = resume
        return Effect.sync(() => void (waiter.resume = undefined))
      })
    const timer = Effect.gen(function*() {
      yield* timing.await
      yield* timing.close
      while (waiting.length > 0) {
        const first = waiting[0]!
        if (first.settled) {
          waiting.shift()
          continue
        }
        const now = yield* Clock.currentTimeMillis
        if (first.at > now) yield* Clock.sleep(Duration.millis(first.at - now))
        else {
          settle(first, false)
          waiting.shift()
        }
      }
    }).pipe(Effect.forever)
    yield* Effect.forkIn(Effect.interruptible(timer), scope)

    const submit: Writer["submit"] = (lane, write) =>
      Effect.gen(function*() {
        const previous = lane.tail
        const waiter: Waiter | undefined = lane.detached
          ? undefined
          : { at: (yield* Clock.currentTimeMillis) + deadlineMs, settled: false, inTime: false, resume: undefined }
        const attempted = previous === undefined ? run(lane, write) : Effect.zipRight(Fiber.await(previous), run(lane, write))
        const fiber = yield* (waiter === undefined
          ? attempted
          : Effect.ensuring(attempted, Effect.sync(() => settle(waiter, true)))).pipe(Effect.forkIn(scope))
        lane.tail = fiber
        if (waiter !== undefined) {
          waiting.push(waiter)
          yield* timing.open
        }
        // The timer fiber bounds the wait, so it needs no interruption: a request being interrupted (its client went
        // away, the server runs its middleware uninterruptibly) still waits its share and goes on to its next write.
        const inTime = waiter === undefined ? false : yield* answer(waiter)
        if (!inTime) {
          lane.detached = true
          writesDeferred.unsafeUpdate(1, [])
          running++
          yield* Effect.forkIn(Effect.ensuring(Fiber.await(fiber), Effect.sync(() => void running--)), scope)
        }
      })

    // The replayer: the head of the queue until it lands (or is refused), then the next; an outage waits and retries.
    const replayHead = replaying.withPermits(1)(Effect.suspend(() => {
      const head = queue[0]
      if (head === undefined) return Effect.succeed(false)
      return Effect.map(head.write.attempt(head.lane), (outcome) => {
        if (outcome === "outage") return true
        queue.shift()
        head.lane.queued--
        queueDepth.unsafeUpdate(queue.length, [])
        writesReplayed.unsafeUpdate(1, [])
        return false
      })
    }))
    const replayer = Effect.gen(function*() {
      yield* wake.await
      yield* wake.close
      while (queue.length > 0) {
        const blocked = yield* replayHead
        if (blocked) yield* Clock.sleep(settings.retry)
      }
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logError("lifecycle replay failed", Cause.squash(cause))),
      Effect.forever,
      Effect.annotateLogs({ package: "@sg/trace", fiber: "TraceLifecycle" })
    )
    yield* Effect.forkIn(Effect.interruptible(replayer), scope)

    const flush: Writer["flush"] = (within) =>
      Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(within)
        // Writes past their request's deadline either land or join the queue: wait for them first.
        while (running > 0 && (yield* Clock.currentTimeMillis) < deadline) yield* Clock.sleep(Duration.millis(10))
        while (queue.length > 0 && (yield* Clock.currentTimeMillis) < deadline) {
          const blocked = yield* replayHead
          if (blocked) yield* Clock.sleep(settings.retry)
        }
        const left = queue.splice(0)
        for (const { lane, write } of left) {
          lane.queued--
          yield* settings.lost(write.operation, "shutdown", lane)
        }
        queueDepth.unsafeUpdate(0, [])
      })

    return { submit, flush, stats: Effect.sync(() => ({ queued: queue.length, running })) }
  })
