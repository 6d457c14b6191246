"""The web shell: kubectl (and helm) in the browser, sandboxed, over a WebSocket."""
