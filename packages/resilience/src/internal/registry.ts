/**
 * The breakers a process keeps, bounded: one entry per name, created on first use; entries idle for about the idle
 * timeout are swept away, and past the cap one not used lately makes room. A call marks its entry with the current
 * sweep epoch (one field write, no clock read), so the hot path pays nothing for the bookkeeping. Sweeps run when a
 * breaker is created, when the breakers are listed, and every 1,024 calls, at most every half idle timeout: no timer
 * runs, so a test clock moved on by years wakes nothing. A sweep only ever over-estimates how recently an entry was
 * used, so an entry goes once idle for at least the idle timeout (and, with calls or listings coming, not much more).
 */
import type * as Clock from "effect/Clock"
import { evicted } from "./shell.js"

/** What the registry needs of an entry. */
export interface Entry {
  readonly name: string
  /** The sweep epoch of the entry's last call. */
  seen: number
  /** A time at or after its last call, as of the last sweep (this process' clock). */
  activeAt: number
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

/** Entries past the cap looked at for one to evict. */
const scanLimit = 64

/** Calls between two looks at the clock for a due sweep. */
const callsPerLook = 1024

/** A bounded map of breakers. */
export class Registry<E extends Entry> {
  private readonly entries = new Map<string, E>()
  private nextSweep = -Infinity
  private calls = 0
  /** The current sweep epoch; a call sets its entry's `seen` to it. */
  epoch = 0

  constructor(private readonly options: Options<E>) {}

  get size(): number {
    return this.entries.size
  }

  get(name: string): E | undefined {
    return this.entries.get(name)
  }

  /** The entry for `name`, created (after a sweep if one is due, and making room if at the cap) when there is none. */
  obtain(name: string, now: () => number): E {
    let entry = this.entries.get(name)
    if (entry === undefined) {
      const at = now()
      this.tidy(at)
      if (this.entries.size >= this.options.max) this.makeRoom(at)
      entry = this.options.create(name)
      entry.seen = this.epoch
      entry.activeAt = at
      this.entries.set(name, entry)
    }
    return entry
  }

  /** The entry for a call to `name`, marked as used. */
  use(name: string, clock: Clock.Clock): E {
    const entry = this.entries.get(name) ?? this.obtain(name, () => clock.unsafeCurrentTimeMillis())
    entry.seen = this.epoch
    if (++this.calls >= callsPerLook) {
      this.calls = 0
      this.tidy(clock.unsafeCurrentTimeMillis())
      entry.seen = this.epoch
    }
    return entry
  }

  /** Every entry, after a sweep if one is due. */
  list(now: number): IterableIterator<E> {
    this.tidy(now)
    return this.entries.values()
  }

  /** Every entry, as it is. */
  values(): IterableIterator<E> {
    return this.entries.values()
  }

  /** Sweeps when the last sweep is half an idle timeout old. */
  tidy(now: number): void {
    if (now < this.nextSweep) return
    this.nextSweep = now + Math.max(1, this.options.idleMs / 2)
    for (const entry of this.entries.values()) {
      if (entry.seen === this.epoch) entry.activeAt = now
      else if (
        now - entry.activeAt >= this.options.idleMs && this.options.evictable(entry, now) && !this.options.busy(entry)
      ) {
        this.evict(entry, "idle")
      }
    }
    this.epoch++
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
}
