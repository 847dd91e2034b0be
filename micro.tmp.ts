import { encodeKey, generatePrivateKey } from './crypto/keys.ts';
import { parseKey } from './src/config/values.ts';
import { parsePrefix } from './src/config/index.ts';
const keys = Array.from({ length: 10000 }, () => encodeKey(generatePrivateKey()));
const v4 = Array.from({ length: 10000 }, (_, i) => `10.8.${i >> 8}.${i & 255}/32`);
const v6 = Array.from({ length: 10000 }, (_, i) => `fd00:8::${i.toString(16)}/128`);
const dates = Array.from({ length: 10000 }, () => new Date());
for (let k = 0; k < 3; k++) {
  let t = performance.now(); for (const x of keys) parseKey(x); const a = performance.now() - t;
  t = performance.now(); for (const x of v4) parsePrefix(x, { mask: true }); const b = performance.now() - t;
  t = performance.now(); for (const x of v6) parsePrefix(x, { mask: true }); const c = performance.now() - t;
  t = performance.now(); for (const x of dates) x.toISOString(); const d = performance.now() - t;
  t = performance.now(); for (const x of keys) Buffer.from(x, 'base64'); const e = performance.now() - t;
  console.log(`parseKey ${a.toFixed(1)} v4 ${b.toFixed(1)} v6 ${c.toFixed(1)} iso ${d.toFixed(1)} buf ${e.toFixed(1)}`);
}
