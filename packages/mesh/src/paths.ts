/**
 * A path a client names on a service's disk, confined to the service's root: a client must not
 * read (or make a service read) files outside what the service was given. Symbolic links are
 * followed before the check, so a link inside the root cannot lead out of it.
 */
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { invalidArgument, notFound } from './errors';

/** `requested` resolved against `root`; NOT_FOUND when it does not exist, INVALID_ARGUMENT outside the root (errors name `field`). */
export function pathUnder(root: string, requested: string, field: string, what: string): string {
  const path = resolve(root, requested);
  if (!existsSync(path)) throw notFound(field, `no file or directory ${JSON.stringify(requested)} under ${what}`);
  const inside = relative(realpathSync(root), realpathSync(path));
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside))
    throw invalidArgument(field, `must name a file or directory under ${what}, got ${JSON.stringify(requested)}`);
  return path;
}
