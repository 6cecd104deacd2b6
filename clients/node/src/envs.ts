/**
 * The environment variables the Node client reads — the same names, defaults
 * and meaning as the Python client's table (clients/python/maestro/envs.py).
 * An empty value counts as unset.
 */

export interface EnvVar {
  readonly name: string;
  readonly default: string | undefined;
}

export const MAESTRO_TARGET: EnvVar = { name: "MAESTRO_TARGET", default: "127.0.0.1:9000" };
export const MAESTRO_API_KEY: EnvVar = { name: "MAESTRO_API_KEY", default: undefined };
export const MAESTRO_API_KEY_FILE: EnvVar = {
  name: "MAESTRO_API_KEY_FILE",
  default: "~/.maestro/api_key",
};

/** The variable's value as set, else its default. */
export function envValue(variable: EnvVar, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[variable.name];
  return value ? value : variable.default;
}

/** Where clients connect by default: MAESTRO_TARGET, else 127.0.0.1:9000. */
export function defaultTarget(env: NodeJS.ProcessEnv = process.env): string {
  return envValue(MAESTRO_TARGET, env) as string;
}
