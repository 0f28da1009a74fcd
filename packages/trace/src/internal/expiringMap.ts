/**
 * The bounded maps of the memory stores and the recorder: entries that expire at a time the caller gives (read from
 * `Clock` and passed as `now`, so `TestClock` drives them), purged without being read again, and a count cap past
 * which the entry written longest ago goes first.
 *
 * Expiries sit in a binary min-heap (each node knows its slot, so a changed or removed expiry is O(log n)) and write
 * order in a doubly linked list (O(1) to move an entry to the newest end or drop the oldest). Purging is amortised on
 * writes: each `set` first removes up to `purgeBudget` expired entries, soonest expiry first, which outpaces the one
 * entry a write can add; no fiber, so the stores stay plain `Effect.sync` constructions without a `Scope`, and nothing
 * runs between a test's `TestClock.adjust` calls. An idle map keeps its expired entries until the next write, but
 * never more than its cap.
 *
 * Hand-written: lru-cache's TTLs read `performance.now()` and timers rather than Effect's `Clock`, its stale purge is
 * a full scan, and its recency moves on reads.
 */

/** Why an entry left without being deleted: its expiry passed, or the cap pushed it out. */
export type Removal = "expired" | "evicted"

/** How a map is bounded. */
export interface Options<K, V> {
  /** Entries kept at most; past it the least recently written goes (`Infinity`: no cap). */
  readonly capacity: number
  /** Expired entries removed per write (16). */
  readonly purgeBudget?: number | undefined
  /** Called for each entry that expired or was evicted (not for `delete` or `clear`). */
  readonly onRemove?: ((key: K, value: V, why: Removal) => void) | undefined
}

/** What a map did so far. */
export interface Stats {
  readonly size: number
  /** Entries with an expiry, waiting in the heap. */
  readonly expiring: number
  readonly expired: number
  readonly evicted: number
}

interface Node<K, V> {
  readonly key: K
  value: V
  /** Unix ms; `Infinity` when the entry does not expire. */
  expiresAt: number
  /** Its slot in the heap; -1 when it does not expire. */
  slot: number
  older: Node<K, V> | undefined
  newer: Node<K, V> | undefined
}

/** A map with per-entry expiry and a count cap (see the module comment). */
export class ExpiringMap<K, V> implements Iterable<[K, V]> {
  private readonly nodes = new Map<K, Node<K, V>>()
  private readonly heap: Array<Node<K, V>> = []
  private oldest: Node<K, V> | undefined = undefined
  private newest: Node<K, V> | undefined = undefined
  private readonly capacity: number
  private readonly purgeBudget: number
  private readonly onRemove: ((key: K, value: V, why: Removal) => void) | undefined
  private expiredCount = 0
  private evictedCount = 0

  constructor(options: Options<K, V>) {
    if (!(options.capacity >= 1)) throw new RangeError(`capacity must be at least 1, not ${options.capacity}`)
    this.capacity = options.capacity
    this.purgeBudget = options.purgeBudget ?? 16
    this.onRemove = options.onRemove
  }

  /** Entries held, expired ones not yet purged included. */
  get size(): number {
    return this.nodes.size
  }

  /** The live value at `now`; an expired entry found here is removed. */
  get(key: K, now: number): V | undefined {
    const node = this.nodes.get(key)
    if (node === undefined) return undefined
    if (node.expiresAt <= now) {
      this.remove(node, "expired")
      return undefined
    }
    return node.value
  }

  /** The value, expired or not. */
  peek(key: K): V | undefined {
    return this.nodes.get(key)?.value
  }

  /** Whether the key is held, expired or not. */
  has(key: K): boolean {
    return this.nodes.has(key)
  }

  /** The key's expiry (Unix ms); `undefined` when it is absent or does not expire. */
  expiresAt(key: K): number | undefined {
    const at = this.nodes.get(key)?.expiresAt
    return at === undefined || at === Infinity ? undefined : at
  }

  /**
   * Writes `value` under `key`, making it the newest entry. `expiresAt` (Unix ms, `Infinity` for none) sets the
   * expiry; left out, a live entry keeps its own (as HSET keeps a TTL) and a new one does not expire. Purges up to
   * `purgeBudget` expired entries first, and evicts the oldest past the cap after.
   */
  set(key: K, value: V, now: number, expiresAt?: number): void {
    this.purge(now, this.purgeBudget)
    let node = this.nodes.get(key)
    if (node !== undefined && node.expiresAt <= now) {
      this.remove(node, "expired")
      node = undefined
    }
    if (node === undefined) {
      node = { key, value, expiresAt: Infinity, slot: -1, older: undefined, newer: undefined }
      this.nodes.set(key, node)
      this.append(node)
    } else {
      node.value = value
      this.unlink(node)
      this.append(node)
    }
    if (expiresAt !== undefined) this.reschedule(node, expiresAt)
    while (this.nodes.size > this.capacity) {
      const oldest = this.oldest!
      this.remove(oldest, oldest.expiresAt <= now ? "expired" : "evicted")
    }
  }

  /** Sets the key's expiry (Unix ms; `Infinity` for none) without moving it; false when the key is absent. */
  expire(key: K, expiresAt: number): boolean {
    const node = this.nodes.get(key)
    if (node === undefined) return false
    this.reschedule(node, expiresAt)
    return true
  }

  /** Removes the key; false when it was absent. */
  delete(key: K): boolean {
    const node = this.nodes.get(key)
    if (node === undefined) return false
    this.detach(node)
    return true
  }

  /** Removes every entry, calling nothing. */
  clear(): void {
    this.nodes.clear()
    this.heap.length = 0
    this.oldest = undefined
    this.newest = undefined
  }

  /** Removes up to `budget` entries expired at `now`, soonest expiry first; how many it removed. */
  purge(now: number, budget: number = Infinity): number {
    let removed = 0
    while (removed < budget && this.heap.length > 0 && this.heap[0]!.expiresAt <= now) {
      this.remove(this.heap[0]!, "expired")
      removed++
    }
    return removed
  }

  /** What the map holds and has dropped. */
  stats(): Stats {
    return { size: this.nodes.size, expiring: this.heap.length, expired: this.expiredCount, evicted: this.evictedCount }
  }

  /** Keys and values, oldest write first (expired entries not yet purged included). */
  *[Symbol.iterator](): IterableIterator<[K, V]> {
    for (let node = this.oldest; node !== undefined;) {
      const next = node.newer
      yield [node.key, node.value]
      node = next
    }
  }

  /** Values, oldest write first. */
  *values(): IterableIterator<V> {
    for (const [, value] of this) yield value
  }

  private remove(node: Node<K, V>, why: Removal): void {
    this.detach(node)
    if (why === "expired") this.expiredCount++
    else this.evictedCount++
    this.onRemove?.(node.key, node.value, why)
  }

  private detach(node: Node<K, V>): void {
    this.nodes.delete(node.key)
    this.unlink(node)
    if (node.slot >= 0) this.heapRemove(node)
  }

  private append(node: Node<K, V>): void {
    node.older = this.newest
    node.newer = undefined
    if (this.newest === undefined) this.oldest = node
    else this.newest.newer = node
    this.newest = node
  }

  private unlink(node: Node<K, V>): void {
    if (node.older === undefined) this.oldest = node.newer
    else node.older.newer = node.newer
    if (node.newer === undefined) this.newest = node.older
    else node.newer.older = node.older
    node.older = undefined
    node.newer = undefined
  }

  private reschedule(node: Node<K, V>, expiresAt: number): void {
    const before = node.expiresAt
    node.expiresAt = expiresAt
    if (expiresAt === Infinity) {
      if (node.slot >= 0) this.heapRemove(node)
    } else if (node.slot < 0) {
      node.slot = this.heap.length
      this.heap.push(node)
      this.siftUp(node.slot)
    } else if (expiresAt < before) this.siftUp(node.slot)
    else this.siftDown(node.slot)
  }

  private heapRemove(node: Node<K, V>): void {
    const slot = node.slot
    const last = this.heap.pop()!
    node.slot = -1
    if (last === node) return
    this.heap[slot] = last
    last.slot = slot
    this.siftUp(slot)
    this.siftDown(last.slot)
  }

  private siftUp(slot: number): void {
    const heap = this.heap
    const node = heap[slot]!
    while (slot > 0) {
      const up = (slot - 1) >> 1
      const parent = heap[up]!
      if (parent.expiresAt <= node.expiresAt) break
      heap[slot] = parent
      parent.slot = slot
      slot = up
    }
    heap[slot] = node
    node.slot = slot
  }

  private siftDown(slot: number): void {
    const heap = this.heap
    const node = heap[slot]!
    const length = heap.length
    for (;;) {
      const left = 2 * slot + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && heap[right]!.expiresAt < heap[left]!.expiresAt ? right : left
      if (heap[child]!.expiresAt >= node.expiresAt) break
      heap[slot] = heap[child]!
      heap[slot]!.slot = slot
      slot = child
    }
    heap[slot] = node
    node.slot = slot
  }
}

/**
 * A set capped in count, the first added going first past the cap (an id set, such as the active set: adding a
 * member it holds changes nothing, as SADD).
 */
export class BoundedSet<K> implements Iterable<K> {
  private readonly members: ExpiringMap<K, true>

  constructor(options: { readonly capacity: number; readonly onEvict?: ((key: K) => void) | undefined }) {
    const onEvict = options.onEvict
    this.members = new ExpiringMap<K, true>({
      capacity: options.capacity,
      onRemove: onEvict === undefined ? undefined : (key) => onEvict(key)
    })
  }

  /** Members held. */
  get size(): number {
    return this.members.size
  }

  /** Whether `key` is a member. */
  has(key: K): boolean {
    return this.members.has(key)
  }

  /** Adds `key` (unless it is a member already), evicting the first added past the cap. */
  add(key: K): this {
    if (!this.members.has(key)) this.members.set(key, true, 0)
    return this
  }

  /** Removes `key`; false when it was not a member. */
  delete(key: K): boolean {
    return this.members.delete(key)
  }

  /** How many members the cap pushed out so far. */
  get evicted(): number {
    return this.members.stats().evicted
  }

  /** Members, first added first. */
  *[Symbol.iterator](): IterableIterator<K> {
    for (const [key] of this.members) yield key
  }
}
