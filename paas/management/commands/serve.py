import signal
import subprocess
import sys

from django.core.management.base import BaseCommand, CommandError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Stopped(Exception):
    """SIGTERM or SIGINT, raised again by uvicorn once its graceful shutdown is done."""


def _stopped(signum, frame):
    raise _Stopped(signum)


class Command(BaseCommand):
    help = (
        "Serve the platform with the ASGI server (uvicorn: pages, API, the kubectl proxy and the web "
        "shell's WebSockets) and run a background worker (manage.py qcluster) and the audit streamer "
        "(manage.py audit_stream) beside it. SIGTERM or Ctrl-C stops it gracefully: no new connections, "
        "requests in flight finish (up to 20 s), then the worker and the streamer are stopped too."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--workers", type=int, default=1, help="web server processes (default 1)")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="do not start the background worker and the audit streamer",
        )
        parser.add_argument(
            "--tls-port",
            type=int,
            default=0,
            help="also serve HTTPS on this port (same host), with PAAS_TLS_CERT_FILE and PAAS_TLS_KEY_FILE: "
            "kubectl sends its credential to no plain-HTTP server, so the kubectl proxy needs HTTPS where no "
            "ingress terminates TLS (make run). One web process only.",
        )

    def handle(self, *args, addrport: str, workers: int, no_worker: bool, tls_port: int, **options):
        import uvicorn
        from django.conf import settings

        host, _, port = addrport.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError("Give the address as HOST:PORT, e.g. 127.0.0.1:8000.")
        tls = {}
        if tls_port:
            tls = {"ssl_certfile": settings.PAAS_TLS_CERT_FILE, "ssl_keyfile": settings.PAAS_TLS_KEY_FILE}
            if not all(tls.values()):
                raise CommandError("--tls-port needs PAAS_TLS_CERT_FILE and PAAS_TLS_KEY_FILE.")
            if workers > 1:
                raise CommandError(
                    "--tls-port serves one web process; with workers, TLS ends at the ingress."
                )
        # uvicorn catches the stop signals for its graceful shutdown, then restores the handlers it found
        # and raises the signal again: ours turns it into an exception, so the worker below is still
        # stopped and the command exits 0 (the default handler would kill this process on the spot).
        previous = {sig: signal.signal(sig, _stopped) for sig in STOP_SIGNALS}
        # PROMETHEUS_MULTIPROC_DIR: emptied of an earlier run's files before any process it starts
        # writes there (the web workers, the worker and the streamer share it; paas/metrics.py).
        from paas import metrics

        metrics.prepare_multiprocess_dir()
        helpers = []
        try:
            if not no_worker:
                for command in ("qcluster", "audit_stream"):
                    helpers.append(subprocess.Popen([sys.executable, "manage.py", command]))  # noqa: S603 (ours)
                self.stdout.write(
                    f"Worker and audit streamer started (pids {helpers[0].pid}, {helpers[1].pid})."
                )
            options = {
                "host": host.strip("[]"),
                "loop": "uvloop",
                "http": "httptools",
                "ws": "paas.wsprotocol:WebSocketProtocol",  # (subprotocols the application reads)
                "lifespan": "on",
                "proxy_headers": False,
                "server_header": False,
                "timeout_graceful_shutdown": 20,
                # Logging is the project's (LOGGING: PAAS_LOG_FORMAT), in every process; requests are
                # counted by /metrics, so uvicorn's access log stays off (paas/logging.py).
                "log_config": None,
                "access_log": False,
            }
            if tls:
                _serve_both(options, port=int(port), tls_port=tls_port, tls=tls)
            else:
                uvicorn.run("paas.asgi:application", port=int(port), workers=max(1, workers), **options)
        except _Stopped:
            pass
        finally:
            for helper in helpers:
                helper.send_signal(signal.SIGTERM)
            for helper in helpers:
                try:
                    helper.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    helper.kill()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _serve_both(options: dict, *, port: int, tls_port: int, tls: dict) -> None:
    """HTTP on ``port`` and HTTPS on ``tls_port``, one process and one event loop; when either server
    stops (a stop signal reaches the one whose handler is current), the other is stopped too."""
    import asyncio

    import uvicorn

    servers = [
        uvicorn.Server(uvicorn.Config("paas.asgi:application", port=port, **options)),
        uvicorn.Server(uvicorn.Config("paas.asgi:application", port=tls_port, **tls, **options)),
    ]

    async def main() -> None:
        tasks = [asyncio.ensure_future(server.serve()) for server in servers]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*pending)
        for task in done:
            task.result()

    import uvloop

    uvloop.run(main())
