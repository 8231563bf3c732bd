"""Test support shared by every package: the pytest plugin and its server backends."""
