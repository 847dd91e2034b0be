// Reads a secret for a command: from a terminal, asked twice without echo; else the
// first line of standard input (for scripts: `printf '%s\n' "$PW" | burrow …`), never
// from argv, where every user of the machine could read it.

import { CliError, EXIT_BAD_INPUT } from './errors.js';

const MAX_BYTES = 4096;

function readLineRaw(prompt: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(prompt);
  input.setRawMode(true);
  input.resume();
  input.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let text = '';
    const done = (f: () => void) => {
      input.setRawMode(false);
      input.pause();
      input.removeListener('data', onData);
      process.stderr.write('\n');
      f();
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(() => resolve(text));
        if (ch === '\u0003' || ch === '\u0004') return done(() => reject(new CliError('cancelled', EXIT_BAD_INPUT)));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else if (text.length < MAX_BYTES) text += ch;
      }
    };
    input.on('data', onData);
  });
}

async function readFirstLine(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.includes('\n') || text.length > MAX_BYTES) break;
  }
  return text.split('\n')[0]!.replace(/\r$/, '');
}

export async function readSecret(prompt: string, again: string): Promise<string> {
  if (!process.stdin.isTTY) return readFirstLine();
  const first = await readLineRaw(prompt);
  const second = await readLineRaw(again);
  if (first !== second) throw new CliError('the two entries differ: nothing changed', EXIT_BAD_INPUT);
  return first;
}
