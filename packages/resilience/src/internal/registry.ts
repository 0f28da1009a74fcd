/**
 * The breakers a process keeps, bounded: one entry per name, created on first use; entries idle for about the idle
 * timeout are swept away, and past the cap one not used lately makes room. A call marks its entry with the current
 * sweep epoch (one field write, no clock read), so the hot path pays nothing for the bookkeeping.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { evicted } from "./shell.js"

/** What the registry needs of an entry. */
export interface Entry {
  readonly name: string
  /** The sweep epoch of the entry's last call. */
  seen: number
}

/** How a registry decides. */
export interface Options<E extends Entry> {
  readonly max: number
  readonly idleMs: number
  readonly create: (name: string) => E
  /** Whether forgetting `entry` now loses nothing that matters (an open breaker past its deadline, say). */
  readonly evictable: (entry: E, now: number) => boolean
  /** Whether `entry` has calls in flight that will come back to it (its trials): kept even past the cap if possible. */
  readonly busy: (entry: E) => boolean
}

/** Sweeps an entry has to miss before it goes: with one sweep every half idle timeout, it was idle 1 to 1.5 times it. */
const idleSweeps = 3

/** Entries past the cap looked at for one to evict. */
const scanLimit = 64

/** A bounded map of breakers. */
export class Registry<E extends Entry> {
  private readonly entries = new Map<string, E>()
  /** The current sweep epoch; a call sets its entry's `seen` to it. */
  epoch = 0

  constructor(private readonly options: Options<E>) {}

  get size(): number {
    return this.entries.size
  }

  get(name: string): E | undefined {
    return this.entries.get(name)
  }

  /** The entry for `name`, created (making room first if at the cap) when there is none. */
  obtain(name: string, now: () => number): E {
    let entry = this.entries.get(name)
    if (entry === undefined) {
      if (this.entries.size >= this.options.max) this.makeRoom(now())
      entry = this.options.create(name)
      entry.seen = this.epoch
      this.entries.set(name, entry)
    }
    return entry
  }

  values(): IterableIterator<E> {
    return this.entries.values()
  }

  private makeRoom(now: number): void {
    let fallback: E | undefined
    let scanned = 0
    for (const entry of this.entries.values()) {
      if (entry.seen < this.epoch && this.options.evictable(entry, now) && !this.options.busy(entry)) {
        return this.evict(entry, "capacity")
      }
      if (fallback === undefined && !this.options.busy(entry)) fallback = entry
      if (++scanned >= scanLimit) break
    }
    const victim = fallback ?? this.entries.values().next().value
    if (victim !== undefined) this.evict(victim, "capacity")
  }

  private evict(entry: E, reason: "idle" | "capacity"): void {
    this.entries.delete(entry.name)
    evicted(reason)
  }

  /** One sweep: a new epoch, and entries idle for `idleSweeps` epochs that can go, gone. */
  sweep(now: number): void {
    this.epoch++
    for (const entry of this.entries.values()) {
      if (
        this.epoch - entry.seen >= idleSweeps && this.options.evictable(entry, now) && !this.options.busy(entry)
      ) {
        this.evict(entry, "idle")
      }
    }
  }

  /** Sweeps every half idle timeout until the scope closes. */
  get sweeper(): Effect.Effect<void, never, Scope.Scope> {
    return Clock.currentTimeMillis.pipe(
      Effect.map((now) => this.sweep(now)),
      Effect.repeat(Schedule.spaced(Math.max(1, Math.floor(this.options.idleMs / 2)))),
      Effect.interruptible,
      Effect.forkScoped,
      Effect.asVoid
    )
  }
}
