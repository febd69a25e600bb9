/**
 * How a CRD says that Ironflow installed it. CRDs without it belong to
 * another installation (a real Cluster API or Metal3 on the management
 * cluster) and are never overwritten without `--overwrite-foreign-crds`.
 */
export const CRD_OWNER_LABEL = { key: 'app.kubernetes.io/managed-by', value: 'ironflow' } as const;

/** The server-side-apply field manager Ironflow writes CRDs (and earlier versions wrote them) with. */
export const CRD_FIELD_MANAGER = 'ironflow';
