/**
 * Opening a file strictly inside a served root (the TFTP root, HTTP /files/).
 *
 * Both servers answer machines on the provisioning network, which Ironflow
 * does not trust: a request must never reach a file outside the root, neither
 * with `../`, an absolute path, nor a symlink placed in the root that points
 * out of it (node-tftp on its own follows such symlinks, as tested in test/integration/pxe-tftp.test.ts).
 *
 * The check is made on the file descriptor actually opened
 * (`/proc/self/fd/<fd>` names the file the kernel opened, after every symlink
 * was resolved), so swapping a symlink between a check and the open cannot
 * slip past it.
 */
import { promises as fs, constants as fsConstants } from 'node:fs';
import * as path from 'node:path';

/** Why a request was refused; `reason` is safe to log (it names no file outside the root). */
export class FileRefused extends Error {
  constructor(
    readonly requested: string,
    readonly reason: 'traversal' | 'absolute' | 'escapes-root' | 'not-a-file' | 'not-found' | 'bad-name',
  ) {
    super(`refused "${requested}": ${reason}`);
    this.name = 'FileRefused';
  }
}

export interface ConfinedFile {
  handle: fs.FileHandle;
  size: number;
  /** Path relative to the root, as resolved (after symlinks inside the root). */
  relative: string;
}

/**
 * Checks a requested name without touching the disk: relative, no `..`
 * segment, no NUL or backslash. Names are as the client sent them (TFTP) or
 * as decoded from the URL (HTTP).
 */
export function checkRequestedName(requested: string): string {
  if (requested.length === 0 || requested.length > 1024 || /[\0\\]/.test(requested)) {
    throw new FileRefused(requested, 'bad-name');
  }
  if (path.posix.isAbsolute(requested)) throw new FileRefused(requested, 'absolute');
  if (requested.split('/').includes('..')) throw new FileRefused(requested, 'traversal');
  return path.posix.normalize(requested);
}

/** The root's real path, resolved once per server (the root itself may be a symlink). */
export async function resolveRoot(root: string): Promise<string> {
  const real = await fs.realpath(root);
  const st = await fs.stat(real);
  if (!st.isDirectory()) throw new Error(`served root ${root} is not a directory`);
  return real;
}

/**
 * Opens `requested` read-only under `realRoot` (from resolveRoot) and proves
 * the opened file lies inside it. The caller closes `handle`.
 */
export async function openConfined(realRoot: string, requested: string): Promise<ConfinedFile> {
  const name = checkRequestedName(requested);
  let handle: fs.FileHandle;
  try {
    // O_NONBLOCK: a FIFO planted in the root must not hang the server on open.
    handle = await fs.open(path.join(realRoot, name), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') throw new FileRefused(requested, 'not-found');
    throw err;
  }
  try {
    const opened = await fs.readlink(`/proc/self/fd/${handle.fd}`);
    if (!opened.startsWith(realRoot + path.sep)) throw new FileRefused(requested, 'escapes-root');
    const st = await handle.stat();
    if (!st.isFile()) throw new FileRefused(requested, 'not-a-file');
    return { handle, size: st.size, relative: opened.slice(realRoot.length + 1) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
