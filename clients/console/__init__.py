"""The web console: static files served by the REST sidecar at ``/``.

``index.html``, ``console.js`` (one ES module, no framework) and
``console.css``. No inline script or style (the sidecar's CSP forbids both);
every value from the API is rendered with ``textContent``.
"""
