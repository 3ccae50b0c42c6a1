import { readdirSync, readFileSync } from 'node:fs';

/**
 * The soft limit on open files of this process (Node raises it to the hard limit at start), or null where it
 * is not known (no /proc). Node has no getrlimit: /proc/self/limits is read, once per caller.
 */
export function openFileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** How many descriptors this process has open (the entries of /proc/self/fd, less the one the listing opens), or null. */
export function openDescriptors(): number | null {
  try {
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}
