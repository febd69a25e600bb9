import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributeUpdatePair } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { redactBmcAddress } from '../../api/bmc-address-redaction';
import type { HostState } from '../../api/host';
import type { SearchAttributeName } from '../../api/search-attributes';
import type { HostContext } from './operations';

const key = (name: SearchAttributeName) => defineSearchAttributeKey(name, SearchAttributeType.KEYWORD);

/**
 * Keeps the host's search attributes (state, BMC, MAC, cluster) current, so
 * the Temporal UI can list e.g. `IronflowState = 'inspecting'`. Each upsert
 * is a history event, so only changed values are sent.
 */
export function upsertHostSearchAttributes(ctx: HostContext, state: HostState): void {
  const wanted: Record<SearchAttributeName, string | undefined> = {
    IronflowKind: 'BareMetalHost',
    IronflowNamespace: ctx.ref.namespace,
    IronflowName: ctx.ref.name,
    IronflowState: state,
    IronflowBmcAddress: redactBmcAddress(ctx.obs.spec.bmc.address),
    IronflowBootMac: ctx.obs.spec.bootMACAddress?.toLowerCase(),
    IronflowCluster: ctx.obs.spec.consumerRef?.name,
  };
  const current = workflowInfo().typedSearchAttributes;
  const updates: SearchAttributeUpdatePair[] = [];
  for (const [name, value] of Object.entries(wanted) as Array<[SearchAttributeName, string | undefined]>) {
    const k = key(name);
    const have = current.get(k);
    if (have === value) continue;
    if (value === undefined && have === undefined) continue;
    updates.push({ key: k, value: value ?? null } as SearchAttributeUpdatePair);
  }
  if (updates.length > 0) upsertSearchAttributes(updates);
}
