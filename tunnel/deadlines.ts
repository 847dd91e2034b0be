// A min-heap of (deadline, item) with lazy deletion: an item is filed again whenever its
// deadline moves earlier; an entry whose deadline no longer matches the item's is stale
// and skipped when it reaches the top. One heap serves every peer of a device, so the
// engine needs one timer in all, armed for `peek()`.

export class DeadlineHeap<T extends { scheduledAt: number }> {
  private at: number[] = [];
  private items: T[] = [];

  get length(): number {
    return this.at.length;
  }

  /** Files `item` for `deadline` if that is earlier than where it is filed now. */
  schedule(item: T, deadline: number): void {
    if (deadline >= item.scheduledAt) return;
    item.scheduledAt = deadline;
    if (deadline === Infinity) return;
    this.push(deadline, item);
  }

  /** The earliest live deadline, or Infinity. */
  peek(): number {
    while (this.at.length > 0 && this.at[0] !== this.items[0]!.scheduledAt) this.pop();
    return this.at.length > 0 ? this.at[0]! : Infinity;
  }

  /** Removes and returns the item whose deadline is earliest and not after `now`. */
  takeDue(now: number): T | undefined {
    for (;;) {
      if (this.at.length === 0 || this.at[0]! > now) return undefined;
      const deadline = this.at[0]!;
      const item = this.pop();
      if (item.scheduledAt !== deadline) continue; // stale
      item.scheduledAt = Infinity;
      return item;
    }
  }

  /** Drops every entry of `item` (it is being removed). */
  forget(item: T): void {
    item.scheduledAt = Infinity; // its entries are now stale
  }

  private push(deadline: number, item: T): void {
    const at = this.at;
    const items = this.items;
    let i = at.length;
    at.push(deadline);
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (at[parent]! <= deadline) break;
      at[i] = at[parent]!;
      items[i] = items[parent]!;
      i = parent;
    }
    at[i] = deadline;
    items[i] = item;
  }

  private pop(): T {
    const at = this.at;
    const items = this.items;
    const top = items[0]!;
    const lastAt = at.pop()!;
    const lastItem = items.pop()!;
    const n = at.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && at[child + 1]! < at[child]!) child++;
        if (at[child]! >= lastAt) break;
        at[i] = at[child]!;
        items[i] = items[child]!;
        i = child;
      }
      at[i] = lastAt;
      items[i] = lastItem;
    }
    return top;
  }
}
