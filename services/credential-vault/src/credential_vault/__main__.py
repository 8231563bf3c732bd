"""`python -m credential_vault`: serve on VAULT_HTTP_HOST:VAULT_HTTP_PORT
(default 127.0.0.1:8002)."""

from plugboard_servicekit.app import serve

from credential_vault.app import SPEC

serve(SPEC)
