"""`python -m connector_registry`: serve on REGISTRY_HTTP_HOST:REGISTRY_HTTP_PORT
(default 127.0.0.1:8001)."""

from plugboard_servicekit.app import serve

from connector_registry.app import SPEC

serve(SPEC)
