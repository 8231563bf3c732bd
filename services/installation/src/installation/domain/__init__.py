"""Pure rules of the installation service: no I/O, unit-tested."""
