"""graphgate clients: the Python SDK, the REST sidecar and the web console."""
