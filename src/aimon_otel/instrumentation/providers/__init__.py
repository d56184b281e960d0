"""Provider adapters: what to wrap in each SDK and how to read it."""
