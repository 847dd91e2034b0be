// The interop matrix against boringtun (built by scripts/setup.sh): both roles, with and without
// a PSK, IPv4 and IPv6 inside and outside, 100 MB checksummed, rekey, restart, wg show.
// The cells are in matrix/matrix.ts; one file per implementation so they run in parallel.
import { defineMatrix } from './matrix/matrix.js';

defineMatrix('boringtun');
