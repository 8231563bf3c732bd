"""`python -m oauth_broker`: serve on OAUTH_HTTP_HOST:OAUTH_HTTP_PORT
(default 127.0.0.1:8003)."""

from plugboard_servicekit.app import serve

from oauth_broker.app import SPEC

serve(SPEC)
