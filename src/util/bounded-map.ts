/**
 * A Map of at most `max` entries: setting a new key when it is full forgets the oldest entry
 * first. For what a server remembers of its callers (parsed keys, sessions, answers to repeat),
 * which no caller may grow without bound.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly max: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.max) this.delete(this.keys().next().value!);
    return super.set(key, value);
  }
}
