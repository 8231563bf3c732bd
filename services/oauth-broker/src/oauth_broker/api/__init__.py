"""HTTP layer of the broker: wire schemas and thin routes."""
