/**
 * Where the API key comes from, like every Maestro client: MAESTRO_API_KEY,
 * else the file MAESTRO_API_KEY_FILE names (default ~/.maestro/api_key,
 * which `make serve` creates). It rides as `authorization: Bearer <key>`.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

import { MAESTRO_API_KEY, MAESTRO_API_KEY_FILE, envValue } from "./envs.js";

export const AUTH_HEADER = "authorization";

function expandHome(path: string): string {
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path;
}

/** MAESTRO_API_KEY, else the key file's content, else undefined. */
export function defaultApiKey(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const key = envValue(MAESTRO_API_KEY, env)?.trim();
  if (key) return key;
  try {
    return readFileSync(expandHome(envValue(MAESTRO_API_KEY_FILE, env) as string), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}
