// The one "do this, remember how to undo it" mechanism.
//
// Every change a session makes is preceded by its undo: `intend(what, record)` stores a
// record that says how to take the change back, and only then is the change made. When
// the change fails, `cancel(id)` forgets the record again. Records are data, interpreted
// by the `perform` function the stack is built with, so that they can be persisted (the
// journal in journal.ts) and replayed by another process after this one died. Undos
// that only make sense inside this process (closing a socket, stopping the engine) are
// `defer`red closures: they are never persisted, and die with the process.
//
// `unwind` runs the undos newest first and keeps going past failures; the ones that
// failed stay on the stack, so a second call retries them. An entry marked `keep` is
// "kept when the daemon dies": an unwind that is not an explicit down leaves it, and so
// does a crash (the kill switch's table fails closed this way).

export interface UndoEntry<R> {
  readonly id: number;
  /** For logs and error messages: the undo, as a person would read it. */
  readonly what: string;
  /** The persisted form: data that `perform` knows how to undo. */
  readonly record?: R;
  /** A process-local undo; never persisted. */
  readonly local?: () => unknown;
  /** Kept when the daemon dies; only an explicit down removes it. */
  readonly keep: boolean;
}

export interface UnwindOptions {
  /** Only these entries (default: all). */
  readonly ids?: ReadonlySet<number>;
  /** Leave the entries marked `keep` in place (the daemon is dying, not going down). */
  readonly leaveKept?: boolean;
}

export interface UnwindResult {
  readonly errors: { readonly what: string; readonly error: Error }[];
}

export class UndoStack<R> {
  private readonly stack: UndoEntry<R>[] = [];
  private nextId = 1;

  /**
   * @param perform undoes one record (for a journal replay too)
   * @param persist called with the records after every change to the stack, before the
   *   caller goes on to make the change it announced (write-ahead)
   */
  constructor(
    private readonly perform: (record: R) => Promise<void>,
    private readonly persist: (entries: readonly UndoEntry<R>[]) => void = () => undefined,
  ) {}

  /** The records in order (oldest first), for the journal. */
  get entries(): readonly UndoEntry<R>[] {
    return this.stack;
  }

  get size(): number {
    return this.stack.length;
  }

  /** Announces a change: its undo is recorded (and persisted) before the caller makes it. */
  intend(what: string, record: R, options: { keep?: boolean } = {}): number {
    return this.add({ id: this.nextId++, what, record, keep: options.keep === true });
  }

  /** A process-local undo, run in order with the others but never persisted. */
  defer(what: string, local: () => unknown): number {
    return this.add({ id: this.nextId++, what, local, keep: false });
  }

  /** The change announced as `id` was not made after all. */
  cancel(id: number): void {
    const i = this.stack.findIndex((e) => e.id === id);
    if (i < 0) return;
    this.stack.splice(i, 1);
    this.persist(this.stack);
  }

  /** Records the undo, runs `change`, and forgets the undo again if the change throws. */
  async around<T>(what: string, record: R, change: () => Promise<T>, options: { keep?: boolean } = {}): Promise<T> {
    const id = this.intend(what, record, options);
    try {
      return await change();
    } catch (e) {
      this.cancel(id);
      throw e;
    }
  }

  /** Undoes one change now (a route whose prefix went away) and forgets it. */
  async release(id: number): Promise<void> {
    const entry = this.stack.find((e) => e.id === id);
    if (entry === undefined) return;
    await this.runOne(entry);
    this.cancel(id);
  }

  /** Undoes newest first, past failures. What failed stays on the stack for a retry. */
  async unwind(options: UnwindOptions = {}): Promise<UnwindResult> {
    const errors: { what: string; error: Error }[] = [];
    for (const entry of [...this.stack].reverse()) {
      if (options.ids !== undefined && !options.ids.has(entry.id)) continue;
      if (options.leaveKept === true && entry.keep) continue;
      try {
        await this.runOne(entry);
        this.stack.splice(this.stack.indexOf(entry), 1);
        this.persist(this.stack);
      } catch (e) {
        errors.push({ what: entry.what, error: e instanceof Error ? e : new Error(String(e)) });
      }
    }
    return { errors };
  }

  private add(entry: UndoEntry<R>): number {
    this.stack.push(entry);
    if (entry.record !== undefined) this.persist(this.stack);
    return entry.id;
  }

  private async runOne(entry: UndoEntry<R>): Promise<void> {
    if (entry.local !== undefined) await entry.local();
    else if (entry.record !== undefined) await this.perform(entry.record);
  }
}
