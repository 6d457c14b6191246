"""The web shell's WebSocket: ``ws/instances/<id>/shell/`` (Channels; the session's user).

The browser (xterm.js) sends keystrokes (``{"t": "i", "d": "..."}``) and its size (``{"t": "r", "c":
cols, "r": rows}``); the server answers with terminal output (text frames). Lines are edited here, on
the server (echo, backspace, Ctrl-U, Ctrl-C, Ctrl-L, history with the arrow keys): no shell ever runs.
Each entered line goes through :mod:`policy` (a named refusal, or an allowed kubectl/helm argv), is
audited, and runs in its own sandbox (:mod:`sandbox`) on a pseudo-terminal whose output is streamed
back at most ``PAAS_SHELL_OUTPUT_BYTES_PER_SECOND``. Ctrl-C kills the running command's sandbox.

The session ends (its credential revoked, the close audited) when the page closes, after
``PAAS_SHELL_IDLE_SECONDS`` without input or output, after ``PAAS_SHELL_MAX_SECONDS``, or when the
user may no longer use the instance (the proxy's own check, every ``app.RECHECK_SECONDS``).
"""

import asyncio
import codecs
import contextlib
import fcntl
import json
import os
import pty
import struct
import termios
import time

from channels.generic.websocket import AsyncWebsocketConsumer

from instances.kubeproxy import app as proxy_app
from instances.kubeproxy import credentials
from instances.kubeproxy.db import in_thread
from instances.shell import policy, sandbox, sessions
from paas.errors import Conflict, NotFound
from tenancy import account_gate

PROMPT = "\x1b[1;32mkubectl\x1b[0m$ "
HISTORY = 200
CLOSE_NOT_FOUND = 4404
CLOSE_REFUSED = 4409
CLOSE_LIMIT = 4408


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


class ShellConsumer(AsyncWebsocketConsumer):
    session: sessions.Session | None = None

    async def connect(self) -> None:
        from django.conf import settings

        self.session = None
        self.line = ""
        self.history: list[str] = []
        self.history_at = 0
        self.process = None
        self.run_task: asyncio.Task | None = None
        self.commands = 0
        self.last_activity = time.monotonic()
        self.cols, self.rows = 80, 24
        self.end_reason = "closed"
        self.tasks: list[asyncio.Task] = []
        self.escape = ""
        self.interrupted = False
        user = self.scope.get("user")
        instance_id = self.scope["url_route"]["kwargs"]["instance_id"]
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_NOT_FOUND)
            return
        hold = await in_thread(account_gate.hold_for_session)(user, self.scope.get("session"))
        if hold is not None:  # the pages' gate: MFA step, verified email (tenancy.account_gate)
            await self.accept()
            await self.send(text_data=_crlf(f"{hold.message}\n"))
            await self.close(code=CLOSE_REFUSED)
            return
        programs = sandbox.binaries()
        try:
            sandbox.bwrap_binary()
            if "kubectl" not in programs:
                raise sandbox.SandboxUnavailable("kubectl (PAAS_KUBECTL_BINARY) is not installed.")
        except sandbox.SandboxUnavailable as exc:
            await self.accept()
            await self.send(text_data=_crlf(f"The web shell is not available: {exc}\n"))
            await self.close(code=CLOSE_REFUSED)
            return
        try:
            self.session = await in_thread(sessions.shell_open)(
                actor=user, instance_id=instance_id, base_url=settings.PAAS_KUBE_PROXY_URL or None
            )
        except NotFound:
            await self._refuse(CLOSE_NOT_FOUND)
            return
        except Conflict as exc:
            await self.accept()
            await self.send(text_data=_crlf(f"{exc.message}\n"))
            await self.close(code=CLOSE_REFUSED)
            return
        self.helm = "helm" in programs
        self.workspace = sandbox.Workspace.create()
        self.relay = sandbox.Relay(self.workspace.directory, credentials.proxy_base_url())
        await self.relay.start()
        self.tls = sandbox.LoopbackTLS.create()
        self.kubeconfig = sandbox.sandbox_kubeconfig(self.session.kubeconfig, self.tls)
        await self.accept()
        self.tasks = [asyncio.ensure_future(self._limits())]
        tools = "kubectl and helm (read-only)" if self.helm else "kubectl"
        await self.send(
            text_data=_crlf(
                f"\x1b[1m{self.session.instance_name}\x1b[0m: {tools} in namespace {self.session.namespace}, "
                "through the platform's proxy. Every command is audited.\n"
                "No shell runs here: one kubectl command per line (no pipes, files, proxy, port-forward, cp, "
                "edit or plugins). Ctrl-C stops a command.\n"
            )
            + PROMPT
        )

    async def _refuse(self, code: int) -> None:
        """Accepted, then closed with ``code`` (a refusal before accepting would be a bare HTTP 403, the
        same as a foreign page's Origin); missing and forbidden instances get the same code."""
        await self.accept()
        await self.close(code=code)

    async def _limits(self) -> None:
        """End the session at its idle timeout, its maximum length, or when its grant ends."""
        from django.conf import settings

        grant_gone = asyncio.ensure_future(self._grant_watch())
        try:
            while True:
                now = time.monotonic()
                idle_left = settings.PAAS_SHELL_IDLE_SECONDS - (now - self.last_activity)
                max_left = self.session.expires_at_ts - time.time()
                if grant_gone.done():
                    return await self._end("access ended", "\nYour access to this instance ended.\n")
                if max_left <= 0:
                    return await self._end("max session", "\nThe session reached its maximum length.\n")
                if idle_left <= 0:
                    return await self._end("idle", "\nThe session was idle too long.\n")
                await asyncio.wait([grant_gone], timeout=min(idle_left, max_left, 5.0))
        finally:
            grant_gone.cancel()

    async def _grant_watch(self) -> None:
        grant = await in_thread(credentials.grant_for)(
            token=self.session.token, instance_id=self.session.instance_id
        )
        if grant is None:
            return
        await proxy_app.watch_grant(self.session.token, grant)

    async def _end(self, reason: str, message: str) -> None:
        self.end_reason = reason
        await self._kill()
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send(text_data=_crlf(message))
        await self.close(code=CLOSE_LIMIT)

    async def disconnect(self, code) -> None:
        await self._kill()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        if self.session is None:
            return
        session, self.session = self.session, None
        await self.relay.close()
        self.workspace.remove()
        await in_thread(sessions.shell_close)(session=session, reason=self.end_reason, commands=self.commands)

    # --- input -------------------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.session is None:
            return
        try:
            message = json.loads(text_data or "{}")
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("t") == "r":
            self._resize(message.get("c"), message.get("r"))
            return
        data = message.get("d")
        if message.get("t") != "i" or not isinstance(data, str):
            return
        self.last_activity = time.monotonic()
        for char in data[:8192]:
            await self._key(char)

    def _resize(self, cols, rows) -> None:
        if isinstance(cols, int) and isinstance(rows, int) and 0 < cols <= 1000 and 0 < rows <= 1000:
            self.cols, self.rows = cols, rows

    async def _key(self, char: str) -> None:
        if self.escape or char == "\x1b":
            self.escape += char
            if len(self.escape) >= 3 or (len(self.escape) == 2 and char != "["):
                sequence, self.escape = self.escape, ""
                if not self._running():
                    await self._arrow(sequence)
            return
        if char == "\x03":  # Ctrl-C
            if self._running():
                await self._kill()  # the command's end prints ^C and the prompt
            else:
                self.line = ""
                await self.send(text_data="^C\r\n" + PROMPT)
            return
        if self._running():
            return  # no input reaches a running command
        if char in ("\r", "\n"):
            line, self.line = self.line, ""
            await self.send(text_data="\r\n")
            await self._enter(line)
        elif char in ("\x7f", "\x08"):
            if self.line:
                self.line = self.line[:-1]
                await self.send(text_data="\b \b")
        elif char == "\x15":  # Ctrl-U
            await self.send(text_data="\b \b" * len(self.line))
            self.line = ""
        elif char == "\x0c":  # Ctrl-L
            await self.send(text_data="\x1b[2J\x1b[H" + PROMPT + self.line)
        elif char >= " " and len(self.line) < policy.MAX_LINE:
            self.line += char
            await self.send(text_data=char)

    async def _arrow(self, sequence: str) -> None:
        if sequence not in ("\x1b[A", "\x1b[B") or not self.history:
            return
        if sequence == "\x1b[A":
            self.history_at = max(0, self.history_at - 1)
        else:
            self.history_at = min(len(self.history), self.history_at + 1)
        replacement = self.history[self.history_at] if self.history_at < len(self.history) else ""
        await self.send(text_data="\b \b" * len(self.line) + replacement)
        self.line = replacement

    async def _enter(self, line: str) -> None:
        stripped = line.strip()
        if stripped:
            self.history = [*self.history, stripped][-HISTORY:]
        self.history_at = len(self.history)
        if stripped in ("exit", "logout"):
            self.end_reason = "exit"
            await self.close()
            return
        if stripped == "clear":
            await self.send(text_data="\x1b[2J\x1b[H" + PROMPT)
            return
        try:
            command = policy.check(line, helm=self.helm)
        except policy.Refused as exc:
            self.commands += 1
            await in_thread(sessions.shell_command)(
                session=self.session, line=stripped, refusal_code=exc.code, refusal=exc.message
            )
            await self.send(text_data=_crlf(f"\x1b[31mrefused ({exc.code}):\x1b[0m {exc.message}\n") + PROMPT)
            return
        if command is None:
            await self.send(text_data=PROMPT)
            return
        self.commands += 1
        await in_thread(sessions.shell_command)(session=self.session, line=stripped)
        self.run_task = asyncio.ensure_future(self._run(command))
        self.tasks.append(self.run_task)

    # --- a command ---------------------------------------------------------------------------------

    def _running(self) -> bool:
        return self.run_task is not None and not self.run_task.done()

    async def _run(self, command: policy.Command) -> None:
        from django.conf import settings

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.cols, 0, 0))
        try:
            self.process = await sandbox.spawn(
                program=command.program,
                args=command.args,
                workspace=self.workspace,
                kubeconfig=self.kubeconfig,
                tls=self.tls,
                stdout_fd=slave,
            )
        except (OSError, sandbox.SandboxUnavailable) as exc:
            os.close(master)
            os.close(slave)
            await self.send(text_data=_crlf(f"could not start {command.program}: {exc}\n") + PROMPT)
            return
        os.close(slave)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        rate = max(1024, settings.PAAS_SHELL_OUTPUT_BYTES_PER_SECOND)
        loop = asyncio.get_running_loop()
        os.set_blocking(master, False)
        started, sent, at_line_start = time.monotonic(), 0, True
        try:
            while not self.interrupted:
                readable = loop.create_future()
                loop.add_reader(master, lambda f=readable: f.done() or f.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(master)
                try:
                    chunk = os.read(master, min(16384, rate))
                except BlockingIOError:
                    continue
                except OSError:  # EIO: every writer closed (the sandbox ended)
                    break
                if not chunk:
                    break
                self.last_activity = time.monotonic()
                text = decoder.decode(chunk)
                if text:
                    at_line_start = text.endswith("\n")
                await self.send(text_data=text)
                sent += len(chunk)
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:  # over the rate: stop reading (the command blocks on its full terminal)
                    await asyncio.sleep(ahead)
            if self.interrupted:  # what the terminal still holds is dropped with the command
                self._signal_sandbox()
            status = await self.process.wait()
        finally:
            os.close(master)
            self.process = None
        tail = decoder.decode(b"", final=True)
        note = f"\x1b[2m[exit {status}]\x1b[0m\r\n" if status else ""
        if self.interrupted:
            self.interrupted = False
            note, tail, at_line_start = "^C\r\n", "", True
        at_line_start = tail.endswith("\n") if tail else at_line_start
        await self.send(text_data=tail + ("" if at_line_start else "\r\n") + note + PROMPT)

    def _signal_sandbox(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)  # bwrap's session: the sandbox dies with it (--die-with-parent)

    async def _kill(self) -> None:
        """End the running command (its sandbox killed, its unread output dropped)."""
        if self._running():
            self.interrupted = True
        self._signal_sandbox()
        if (
            self.run_task is not None
            and not self.run_task.done()
            and self.run_task is not asyncio.current_task()
        ):
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self.run_task), timeout=5)
