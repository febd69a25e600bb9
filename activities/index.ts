import { createDiagnosticActivities } from './diagnostics/probe';

/** Dependencies the activities need; each lifecycle issue adds its own. */
export type ActivityDeps = Record<string, never>;

/** All activities of the lifecycle worker, built with their dependencies. */
export function createActivities(_deps: ActivityDeps = {}) {
  return { ...createDiagnosticActivities() };
}
export type Activities = ReturnType<typeof createActivities>;
