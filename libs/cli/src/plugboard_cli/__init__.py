"""The `plugboard` command: local dev stack, dev tokens, migrations and topics."""
