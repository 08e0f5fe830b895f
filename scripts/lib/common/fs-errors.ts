// The one table of file-system refusals in words. Reading and writing phrase some of them differently ("does not
// exist" for a file read, "its directory does not exist" for a file written); codes without words are shown as is.

interface Words {
  /** after "FILE: cannot be written: " */
  write: string;
  /** after "FILE: ", for a file that was to be read */
  read?: string;
}

export const ERRNO_WORDS: Record<string, Words> = {
  ENOENT: { write: "its directory does not exist", read: "does not exist" },
  EISDIR: { write: "a directory is in the way", read: "is a directory" },
  ENOTDIR: { write: "a file is in the way of its directory" },
  EACCES: { write: "permission denied", read: "is not readable (permission denied)" },
  EPERM: { write: "operation not permitted" },
  EROFS: { write: "the file system is read-only" },
  ENOSPC: { write: "no space left on the device" },
  EDQUOT: { write: "the disk quota is exceeded" },
};

export const errnoCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** Why a file could not be read, in words: "does not exist", "is a directory", ... */
export function readFailure(e: unknown): string {
  const code = errnoCode(e);
  return (code && ERRNO_WORDS[code]?.read) || `cannot be read (${code})`;
}

/** Why a file could not be written, in words; undefined when the error is not a file-system refusal we know. */
export function writeFailure(e: unknown): string | undefined {
  const code = errnoCode(e);
  return code ? ERRNO_WORDS[code]?.write : undefined;
}
