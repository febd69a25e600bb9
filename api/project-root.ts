import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The Ironflow checkout this code runs from (where package.json names
 * "ironflow"), whether it runs from source, dist/ or a bench build: data
 * files such as api/crds and lab/inventory.yaml are read from there.
 */
export function projectRoot(from: string = __dirname): string {
  for (let dir = from, i = 0; i < 8; i++, dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ironflow') return dir;
  }
  throw new Error(`cannot find the Ironflow checkout above ${from}`);
}
