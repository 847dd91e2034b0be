// cgroup v2 for per-app routing: where the hierarchy is mounted, the cgroups Burrow
// makes for `burrow exec --app NAME`, and how they are removed again.
//
// Burrow's cgroups are BURROW_CGROUP/IFACE/APP under the cgroup2 root. nftables' `socket
// cgroupv2 level N "PATH"` matches a socket whose cgroup is PATH or below it; nft turns
// the path into the cgroup's id when the rules load, reading it under /sys/fs/cgroup.
//
// The root is the first cgroup2 mount in /proc/self/mountinfo: /sys/fs/cgroup on a
// unified system, /sys/fs/cgroup/unified on a hybrid one. A process that sees none (one
// run by `ip netns exec`, which mounts a fresh /sys in a mount namespace of its own)
// mounts the hierarchy at MOUNT_FALLBACK: the mount is that namespace's, and goes with it.
// Wherever the root is, the paths are the same, since there is one cgroup2 hierarchy.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LinuxPlatformError } from './errors.js';

export const BURROW_CGROUP = 'burrow';
/** Where the hierarchy is mounted when this process sees no cgroup2 mount. */
export const MOUNT_FALLBACK = '/run/burrow/cgroup2';
/** Where nft looks for cgroup paths. */
export const NFT_CGROUP_ROOT = '/sys/fs/cgroup';

/** The cgroup2 mount point this process sees, if any. */
export function findCgroup2Mount(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (after === undefined || after.split(' ')[0] !== 'cgroup2') continue;
    // Field 5 is the mount point, with spaces and friends as octal escapes.
    const point = before!.split(' ')[4];
    if (point !== undefined) return point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

/** The cgroup2 root, mounted at MOUNT_FALLBACK when none is visible (needs root). */
export function cgroup2Root(): string {
  const found = findCgroup2Mount();
  if (found !== undefined) return found;
  try {
    mkdirSync(MOUNT_FALLBACK, { recursive: true, mode: 0o700 });
    execFileSync('mount', ['-t', 'cgroup2', 'cgroup2', MOUNT_FALLBACK], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', `no cgroup2 hierarchy is mounted, and mounting one at ${MOUNT_FALLBACK} failed: ${(e as Error).message}`);
  }
  return MOUNT_FALLBACK;
}

/** The cgroup `burrow exec --app APP` puts processes in, relative to the root. */
export function execCgroup(ifname: string, app: string): string {
  return `${BURROW_CGROUP}/${ifname}/${app}`;
}

/** nftables' `level`: how deep the path is below the root. */
export function cgroupLevel(path: string): number {
  return path.split('/').length;
}

/** Makes `path` (relative to the root); false when it existed already. */
export function makeCgroup(root: string, path: string): boolean {
  const dir = join(root, path);
  if (existsSync(dir)) return false;
  mkdirSync(dir);
  return true;
}

function pidsOf(dir: string): string[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter((l) => l !== '');
  } catch {
    return [];
  }
}

/**
 * Removes `path` and the cgroups below it. Processes still inside are moved to the root
 * cgroup first (they go on running, outside the app). With `ifEmpty`, a cgroup that
 * still holds processes or other cgroups is left alone (a parent shared with another
 * tunnel). Gone already counts as done.
 */
export function removeCgroup(root: string, path: string, ifEmpty = false): void {
  const dir = join(root, path);
  if (!existsSync(dir)) return;
  const children = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
  if (ifEmpty && (children.length > 0 || pidsOf(dir).length > 0)) return;
  for (const child of children) removeCgroup(root, `${path}/${child.name}`);
  for (let attempt = 0; ; attempt++) {
    for (const pid of pidsOf(dir)) {
      try {
        writeFileSync(join(root, 'cgroup.procs'), pid);
      } catch {
        // it exited meanwhile
      }
    }
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // A process forked while we moved the others: move again, a few times.
      if (code !== 'EBUSY' || attempt >= 20) throw new LinuxPlatformError('ERR_PLATFORM_COMMAND', `cannot remove the cgroup ${dir}: ${(e as Error).message}`);
    }
  }
}

/** Moves the calling process into `path` (relative to the root). */
export function enterCgroup(root: string, path: string, pid = process.pid): void {
  writeFileSync(join(root, path, 'cgroup.procs'), String(pid));
}

/**
 * argv that runs `nft -f -` where nft can resolve cgroup paths: as is when the hierarchy
 * is at /sys/fs/cgroup, else in a private mount namespace with cgroup2 mounted there.
 */
export function nftWithCgroups(root: string): string[] {
  if (root === NFT_CGROUP_ROOT) return ['nft', '-f', '-'];
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', `mount -t cgroup2 cgroup2 ${NFT_CGROUP_ROOT} && exec nft -f -`];
}
