// Types of cmd/compile-cache.js (plain JavaScript: it runs before anything is type-stripped).

/** Entries (one per module compiled) past which an installation's folder is started afresh. */
export declare const MAX_ENTRIES: number;
/** Installations' folders kept besides the running one's (the most recently used first). */
export declare const KEEP_OTHERS: number;
/** Where this installation's cache goes: `folder` inside `base` (ours to prune), or the user's NODE_COMPILE_CACHE (`base` and `key` null). */
export declare function compileCacheFolders(env?: NodeJS.ProcessEnv, tmp?: string): { base: string | null; folder: string; key: string | null };
/** True when the cache is on. */
export declare function enableSluiceCompileCache(): boolean;
/** At a process's start, before enableSluiceCompileCache: keeps this installation's folder and the one used last before it, starts its own afresh past MAX_ENTRIES. */
export declare function pruneSluiceCompileCache(env?: NodeJS.ProcessEnv, tmp?: string): void;
