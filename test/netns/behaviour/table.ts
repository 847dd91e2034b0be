// The suite's outcome as a table, behaviour × implementation (ok / FAIL), printed at the
// end of the file's run and written to test-results/behaviour-table.md for the closing
// note of issue 18. Rows keep the order in which the behaviours were first recorded.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const TABLE_PATH = join(import.meta.dirname, '..', '..', '..', 'test-results', 'behaviour-table.md');

export class BehaviourTable {
  private readonly rows = new Map<string, Map<string, { ok: boolean; note: string }>>();
  private readonly columns: readonly string[];

  constructor(columns: readonly string[]) {
    this.columns = columns;
  }

  /** `note`: what was measured, shown beside the outcome, e.g. "0.9 KiB, 0.02 s CPU". */
  record(behaviour: string, implementation: string, ok: boolean, note = ''): void {
    let row = this.rows.get(behaviour);
    if (row === undefined) {
      row = new Map();
      this.rows.set(behaviour, row);
    }
    row.set(implementation, { ok, note });
  }

  /** Markdown; a cell for a test that did not run reads "not run". */
  render(): string {
    const cell = (row: Map<string, { ok: boolean; note: string }>, column: string): string => {
      const result = row.get(column);
      if (result === undefined) return 'not run';
      return `${result.ok ? 'ok' : 'FAIL'}${result.note === '' ? '' : ` (${result.note})`}`;
    };
    const lines = [`| behaviour | ${this.columns.join(' | ')} |`, `|---|${this.columns.map(() => '---').join('|')}|`];
    for (const [behaviour, row] of this.rows) lines.push(`| ${behaviour} | ${this.columns.map((c) => cell(row, c)).join(' | ')} |`);
    return `${lines.join('\n')}\n`;
  }

  /** Prints the table to standard output and writes it to test-results/behaviour-table.md; returns the path. */
  publish(): string {
    const text = this.render();
    process.stdout.write(`\nBehaviour suite (issue 18):\n${text}`);
    mkdirSync(join(TABLE_PATH, '..'), { recursive: true });
    writeFileSync(TABLE_PATH, text);
    return TABLE_PATH;
  }
}
