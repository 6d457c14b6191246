"""The web shell's WebSocket routes (paas/asgi.py routes them through Channels: the session's user, and
an Origin that must be one of the allowed hosts)."""

from django.urls import path

from instances.shell.consumer import ShellConsumer

websocket_urlpatterns: list = [
    path("ws/instances/<int:instance_id>/shell/", ShellConsumer.as_asgi()),
]
