/**
 * The machinery under `TraceLifecycle`: each request's writes run in order on a lane of their own, one fiber draining
 * the lane while it has writes pending; a request waits for the writes it asks to wait for at most a deadline (on
 * `Clock`: once one write of a lane has missed it, the lane's later writes go on without the request waiting), and a
 * write the store could not take (an outage, or the trace store's
 * breaker open) goes to a bounded queue that one fiber replays, in order, once the store answers again. A request's
 * writes after a queued one queue behind it, so a trace's `create`, transitions and `finish` always land in order;
 * each carries the request's token, so a write that landed although its reply was lost counts once when replayed.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
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

/** A write of a lane not yet attempted, and the request waiting for it (if one is). */
interface Entry {
  readonly write: Write
  readonly waiter: Waiter | undefined
  /** Attempted (landed, refused, or queued for replay). */
  done: boolean
  /** Its request stopped waiting at the deadline: it counts in `running` until attempted. */
  late: boolean
}

/** One request's lane: its trace, its token, the opening its `create` got, and what of it is still pending. */
export class Lane implements RequestLane {
  opening: number | undefined = undefined
  /** Writes submitted and not yet attempted, in order; one fiber drains them while there are any. */
  readonly pending: Array<Entry> = []
  draining = false
  /** Writes of this lane waiting in the replay queue. */
  queued = 0
  /** Whether a write of this lane missed the deadline: the request has waited its share, the rest go unwaited. */
  detached = false
  constructor(readonly traceId: TraceId, readonly request: string | undefined) {}
}

/** What the writer holds right now. */
export interface Stats {
  /** Writes handed to a lane and not attempted yet. */
  readonly pending: number
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

/**
 * The writer: `submit` hands a write to its lane (and, with `wait`, waits until it has been attempted, at most the
 * deadline), `flush` replays what is queued, `stats` counts.
 */
export interface Writer {
  readonly submit: (lane: Lane, write: Write, wait: boolean) => Effect.Effect<void>
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

    // Lanes with writes not yet attempted: closing waits for them before it replays the queue.
    let draining = 0
    let pending = 0
    const attempted = (entry: Entry) => {
      entry.done = true
      pending--
      if (entry.late) running--
      if (entry.waiter !== undefined) settle(entry.waiter, true)
    }
    // A lane's fiber interrupted (its scope closing before the flush runs): the write it was on and those after it go
    // to the replay queue, in order, for the flush to land; each carries its request's token, so one that had landed
    // counts once.
    const park = (lane: Lane): Effect.Effect<void> =>
      Effect.suspend(() => {
        const left = lane.pending.splice(0)
        lane.draining = false
        draining--
        return Effect.forEach(left, (entry) =>
          Effect.zipRight(
            enqueue(lane, entry.write),
            Effect.sync(() => attempted(entry))
          ), { discard: true })
      })
    // One fiber a lane while it has pending writes, rather than a fiber a write chained on the one before: a request
    // whose create is still out when its finish comes costs one fork, and its writes leave in order.
    const drain = (lane: Lane): Effect.Effect<void> =>
      Effect.suspend(() => {
        const entry = lane.pending[0]
        if (entry === undefined) {
          lane.draining = false
          draining--
          return Effect.void
        }
        return Effect.zipRight(
          Effect.tap(run(lane, entry.write), () => {
            lane.pending.shift()
            attempted(entry)
          }),
          drain(lane)
        )
      })

    const hand = (lane: Lane, entry: Entry): Effect.Effect<void> => {
      lane.pending.push(entry)
      pending++
      if (lane.draining) return Effect.void
      lane.draining = true
      draining++
      return Effect.asVoid(
        Effect.forkIn(Effect.onInterrupt(drain(lane), () => lane.draining ? park(lane) : Effect.void), scope)
      )
    }

    // The timer fiber bounds the wait, so it needs no interruption: a request being interrupted (its client went away,
    // the server runs its middleware uninterruptibly) still waits its share and goes on to its next write.
    const waitFor = (lane: Lane, entry: Entry, waiter: Waiter): Effect.Effect<void> => {
      waiting.push(waiter)
      return Effect.zipRight(
        timing.open,
        Effect.flatMap(answer(waiter), (inTime) => {
          if (inTime) return Effect.void
          lane.detached = true
          writesDeferred.unsafeUpdate(1, [])
          if (!entry.done) {
            entry.late = true
            running++
          }
          return Effect.void
        })
      )
    }

    const submit: Writer["submit"] = (lane, write, wait) =>
      Effect.suspend(() =>
        !wait || lane.detached
          ? hand(lane, { write, waiter: undefined, done: false, late: false })
          : Effect.clockWith((clock) => {
            const waiter: Waiter = {
              at: clock.unsafeCurrentTimeMillis() + deadlineMs,
              settled: false,
              inTime: false,
              resume: undefined
            }
            const entry: Entry = { write, waiter, done: false, late: false }
            return Effect.zipRight(hand(lane, entry), waitFor(lane, entry, waiter))
          })
      )

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
        // Writes not attempted yet (past their request's deadline, or never waited for) either land or join the queue:
        // wait for them first.
        while (draining > 0 && (yield* Clock.currentTimeMillis) < deadline) yield* Clock.sleep(Duration.millis(10))
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

    return { submit, flush, stats: Effect.sync(() => ({ pending, queued: queue.length, running })) }
  })
