"""Pure parts of the broker: egress policy, refresh timing, failure classes, PKCE."""
