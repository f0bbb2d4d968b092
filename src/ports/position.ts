/** Turns an entry's decoded `source` block into its sort key (the connector's rule). */
export type SortKeyOfSource = (source: Record<string, unknown> | null) => string | null;
