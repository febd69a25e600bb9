/**
 * Custom search attributes Ironflow sets on its workflows, so the Temporal UI
 * can answer "all hosts stuck in inspecting" or "every host of cluster c1".
 * The embedded dev server registers them at start; on a real cluster the
 * management plane registers them (idempotently) through the operator API.
 */
export const SEARCH_ATTRIBUTES = {
  IronflowKind: 'Keyword',
  IronflowNamespace: 'Keyword',
  IronflowName: 'Keyword',
  IronflowState: 'Keyword',
  IronflowBmcAddress: 'Keyword',
  IronflowBootMac: 'Keyword',
  IronflowCluster: 'Keyword',
} as const;
export type SearchAttributeName = keyof typeof SEARCH_ATTRIBUTES;
