"""Pure domain of the registry: auth scheme configs, the provider catalogue and the importers.

Nothing here touches the database, the network or the clock, so every rule is
unit-tested in isolation and shared by the HTTP routes, the CLI and the bench.
"""
