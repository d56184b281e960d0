"""Usage events for the billing system: one per priced call, sent in batches, never lost, never twice."""
