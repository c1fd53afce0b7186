/** True when the environment variable says a suite must run here (CI sets it after installing what the suite needs). */
export function requiredByEnvironment(variable: string): boolean {
  return /^(1|true|yes)$/i.test(process.env[variable] ?? '');
}
