"""The web shell's WebSocket routes (paas/asgi.py routes them through Channels)."""

websocket_urlpatterns: list = []
