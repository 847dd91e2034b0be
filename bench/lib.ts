// Shared by the benchmarks: timing by repeated runs and the median, and a table with the
// ratio to a reference measured in the same process. Timings never decide a test.

export interface Rate {
  name: string;
  /** Median operations per second over `runs` runs. */
  perSecond: number;
  runs: number[];
}

/**
 * Calls `op` in a loop for about `ms` milliseconds, `runs` times (after one warm-up run),
 * and returns the median rate. `op` may do `batch` operations per call.
 */
export function measure(name: string, op: () => void, opts: { runs?: number; ms?: number; batch?: number } = {}): Rate {
  const runs = opts.runs ?? 5;
  const ms = opts.ms ?? 400;
  const batch = opts.batch ?? 1;
  const rates: number[] = [];
  for (let r = -1; r < runs; r++) {
    let count = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < ms) {
      op();
      count += batch;
      if ((count & 7) === 0 || batch > 1) elapsed = performance.now() - start;
    }
    elapsed = performance.now() - start;
    if (r >= 0) rates.push((count * 1000) / elapsed);
  }
  return { name, perSecond: median(rates), runs: rates };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));

/** Prints rows as "name  value unit  ratio-to-reference". */
export function report(title: string, unit: string, reference: Rate, rows: Rate[], scale = 1): void {
  console.log(`\n${title}`);
  const width = Math.max(...[reference, ...rows].map((r) => r.name.length));
  for (const r of [reference, ...rows]) {
    const ratio = r === reference ? 'reference' : `${(r.perSecond / reference.perSecond).toFixed(2)}x reference`;
    const spread = `runs ${r.runs.map((x) => fmt(x * scale)).join(' / ')}`;
    console.log(`  ${r.name.padEnd(width)}  ${fmt(r.perSecond * scale).padStart(12)} ${unit}  ${ratio.padEnd(18)} (${spread})`);
  }
}

/**
 * A benchmark's command-line reader: `value(name)` is what follows --name (an error names
 * `who` when it is missing), `number` a whole number within [min, max].
 */
export function argReader(argv: readonly string[], who: string): {
  value(name: string): string | undefined;
  number(name: string, fallback: number, min?: number, max?: number): number;
} {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${who}: --${name} needs a value`);
    return v;
  };
  const number = (name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number => {
    const v = value(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`${who}: --${name} must be a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}, got ${v}`);
    }
    return n;
  };
  return { value, number };
}
