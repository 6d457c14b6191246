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
        "shell's WebSockets) and run a background worker (manage.py qcluster) beside it. SIGTERM or "
        "Ctrl-C stops it gracefully: no new connections, requests in flight finish (up to 20 s), then "
        "the worker is stopped too."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--workers", type=int, default=1, help="web server processes (default 1)")
        parser.add_argument("--no-worker", action="store_true", help="do not start the background worker")

    def handle(self, *args, addrport: str, workers: int, no_worker: bool, **options):
        import uvicorn

        host, _, port = addrport.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError("Give the address as HOST:PORT, e.g. 127.0.0.1:8000.")
        # uvicorn catches the stop signals for its graceful shutdown, then restores the handlers it found
        # and raises the signal again: ours turns it into an exception, so the worker below is still
        # stopped and the command exits 0 (the default handler would kill this process on the spot).
        previous = {sig: signal.signal(sig, _stopped) for sig in STOP_SIGNALS}
        worker = None
        try:
            if not no_worker:
                worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"])
                self.stdout.write(f"Worker started (pid {worker.pid}).")
            uvicorn.run(
                "paas.asgi:application",
                host=host.strip("[]"),
                port=int(port),
                workers=max(1, workers),
                loop="uvloop",
                http="httptools",
                ws="websockets-sansio",
                lifespan="on",
                proxy_headers=False,
                server_header=False,
                timeout_graceful_shutdown=20,
            )
        except _Stopped:
            pass
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
