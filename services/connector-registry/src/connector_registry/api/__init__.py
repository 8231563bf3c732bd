"""HTTP layer of the registry: thin routes over the use cases, wire schemas."""
