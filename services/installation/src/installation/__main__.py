"""`python -m installation`: serve on INSTALLATION_HTTP_HOST:INSTALLATION_HTTP_PORT
(default 127.0.0.1:8004)."""

from plugboard_servicekit.app import serve

from installation.app import SPEC

serve(SPEC)
