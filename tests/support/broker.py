"""The test MQTT broker: a private ``mosquitto`` process and the fixtures' :class:`Broker`.

* :func:`find_mosquitto` - where the ``mosquitto`` binary is, if anywhere.
* :class:`MosquittoProcess` - a throw-away ``mosquitto`` on a free loopback port, with its
  configuration, persistence and log in a temporary directory; stop/start/restart.
* :func:`shipped_broker` - a :class:`MosquittoProcess` running the shipped
  ``deploy/mosquitto`` configuration and ACL with a real password file.
* :class:`Broker` - what the ``broker`` fixture (``tests/conftest.py``) returns: host, port,
  url, and control over a broker process the fixture started itself.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .net import free_port, parse_mqtt_url, port_accepts, wait_port

__all__ = ["Broker", "MosquittoProcess", "find_mosquitto", "shipped_broker"]

DEPLOY_MOSQUITTO = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
"""The shipped broker configuration: `mosquitto.conf` and `acl`."""


def find_mosquitto() -> str | None:
    """Path of a ``mosquitto`` binary: ``$PATH`` first, then Debian's ``/usr/sbin``."""
    found = shutil.which("mosquitto")
    if found:
        return found
    candidate = Path("/usr/sbin/mosquitto")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def shipped_broker(binary: str, users: tuple[str, ...]) -> MosquittoProcess:
    """A started :class:`MosquittoProcess` with the shipped `deploy/mosquitto/mosquitto.conf`
    and `acl`: the listener moved to its free loopback port, the secrets and data paths
    to its temp dir, the file's own log lines replaced by the test ones. Each of `users`
    gets the password `pw-{user}`. The caller closes it. Raises RuntimeError when
    `mosquitto_passwd` is missing or fails."""
    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool is None:
        raise RuntimeError("mosquitto_passwd is not installed (Debian: mosquitto)")
    process = MosquittoProcess(binary)
    try:
        tmp = process.tmpdir
        shutil.copy(DEPLOY_MOSQUITTO / "acl", tmp / "acl")
        passwd = tmp / "passwd"
        for i, user in enumerate(users):
            flags = ["-c", "-b"] if i == 0 else ["-b"]
            result = subprocess.run(
                [passwd_tool, *flags, str(passwd), user, f"pw-{user}"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"mosquitto_passwd failed: {result.stderr.strip()}")
        # as start.sh leaves them (the broker user owns them: MosquittoProcess hands over)
        for secret in (passwd, tmp / "acl"):
            secret.chmod(0o600)
        conf = (DEPLOY_MOSQUITTO / "mosquitto.conf").read_text(encoding="utf-8")
        conf, listeners = re.subn(
            r"^listener 1883$", f"listener {process.port} {process.host}", conf, flags=re.M
        )
        if listeners != 1:
            raise RuntimeError("the shipped mosquitto.conf has no single 'listener 1883' line")
        conf = conf.replace("/mosquitto/secrets/", f"{tmp}/")
        conf = conf.replace("/mosquitto/data/", f"{process.data_dir}/")
        # Our log settings are added by write_config; drop the file's own.
        conf = re.sub(r"^log_(dest|type|timestamp_format) .*$", "", conf, flags=re.M)
        if "/mosquitto/" in re.sub(r"#.*", "", conf):
            raise RuntimeError("the shipped mosquitto.conf names a path this does not move")
        process.write_config(conf)
        process.start()
    except BaseException:
        process.close()
        raise
    return process


class MosquittoProcess:
    """A private ``mosquitto`` on a free loopback port, configured for tests.

    The configuration, the persistence database and the broker log live in one temporary
    directory. :meth:`stop` and :meth:`start` keep the same configuration and port, and
    ``persistence true`` makes sessions (subscriptions and queued QoS>0 messages of
    offline persistent clients) and retained messages survive a restart.
    """

    STOP_TIMEOUT = 5.0
    START_TIMEOUT = 10.0

    def __init__(self, binary: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.binary = binary
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="conduyt-mosquitto-"))
        self.data_dir = self.tmpdir / "data"
        self.data_dir.mkdir()
        self.config_path = self.tmpdir / "mosquitto.conf"
        self.log_path = self.tmpdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self.write_config()
        atexit.register(self.close)

    @staticmethod
    def _run_as() -> tuple[str, int, int] | None:
        """``(user, uid, gid)`` the broker will run as when we are root, else None."""
        # Run as root, mosquitto drops privileges to its `user` (default "mosquitto")
        # right after reading the configuration, and then writes the persistence
        # database as that user. We keep the broker unprivileged, like the Debian
        # service does, and hand it our temp dir (see _hand_over: mkdtemp makes it 0700
        # root, so without a chown it could neither traverse it nor write data/). Where
        # no "mosquitto" account exists we say `user root` explicitly: otherwise it would
        # fall back to "nobody", which cannot write here either. Run as a normal user,
        # `user` has no effect and everything belongs to that user already.
        if os.geteuid() != 0:
            return None
        try:
            account = pwd.getpwnam("mosquitto")
        except KeyError:
            return ("root", 0, 0)
        return ("mosquitto", account.pw_uid, account.pw_gid)

    def _hand_over(self) -> None:
        """Give the temp dir (config, data, any files a test put there) to the broker user."""
        run_as = self._run_as()
        if run_as is None or run_as[1] == 0:
            return
        _, uid, gid = run_as
        for root, dirs, files in os.walk(self.tmpdir):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), uid, gid)
        os.chown(self.tmpdir, uid, gid)

    def write_config(self, body: str | None = None) -> None:
        """(Re)write the configuration; takes effect at the next :meth:`start`.

        *body* replaces the default test settings (listener, anonymous access,
        persistence, limits); it must contain a ``listener`` for :attr:`port` on
        :attr:`host`. The ``user`` line and the logging lines are always added.
        """
        run_as = self._run_as()
        head = [
            "# Generated by tests/support/broker.py for the test suite.",
            f"user {run_as[0]}" if run_as else "",
        ]
        logging_lines = [
            # Log to stderr, which we redirect to a file we opened ourselves (mosquitto
            # may no longer be allowed to open files after dropping privileges).
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            "",
        ]
        if body is not None:
            lines = [*head, body, *logging_lines]
            self.config_path.write_text("\n".join(lines), encoding="utf-8")
            return
        lines = [
            *head,
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # Sessions and retained messages survive restart()/stop()+start().
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            # The database is written on a clean exit (SIGTERM) anyway; a short autosave
            # interval also keeps most of it if a broker ever has to be SIGKILLed.
            "autosave_interval 5",
            # Tests queue bursts of QoS 1 commands for an offline persistent session (the
            # bridge "away"); with the default 1000 a larger burst would be dropped
            # silently and show up as a flaky "lost message". 10000 still bounds memory.
            # 0 (unlimited) would hide a runaway publisher, so not that.
            "max_queued_messages 10000",
            # max_inflight_messages stays at its default (20): unlimited in-flight would
            # mask flow-control problems that a production broker would show, and 20 is
            # plenty for loopback throughput.
            # Small messages are the norm here: do not let Nagle add latency to them.
            "set_tcp_nodelay true",
            *logging_lines,
        ]
        self.config_path.write_text("\n".join(lines), encoding="utf-8")

    @property
    def url(self) -> str:
        """``mqtt://host:port`` of this broker."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running broker, or None."""
        with self._lock:
            return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last *lines* lines of the broker log (for error messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        """Start the broker (no-op when running) and wait until its port accepts.

        Raises RuntimeError with the tail of the broker log when it does not come up
        within :attr:`START_TIMEOUT` seconds.
        """
        with self._lock:
            if self.is_running():
                return
            if port_accepts(self.host, self.port):
                msg = f"port {self.host}:{self.port} is taken by another process"
                raise RuntimeError(msg)
            self._hand_over()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [self.binary, "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C in the terminal reaches pytest, which then
                    # stops the broker cleanly through the fixture finaliser.
                    start_new_session=True,
                )
            proc = self._proc
            if not wait_port(
                self.host, self.port, self.START_TIMEOUT, alive=lambda: proc.poll() is None
            ):
                code = proc.poll()
                self._terminate()
                msg = (
                    f"mosquitto did not accept connections on {self.host}:{self.port} "
                    f"within {self.START_TIMEOUT}s (exit code {code}); log tail:\n"
                    f"{self.log_tail()}"
                )
                raise RuntimeError(msg)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.STOP_TIMEOUT)
        self._proc = None

    def stop(self) -> None:
        """Stop the broker by PID: SIGTERM (it saves its database), SIGKILL after 5 s."""
        with self._lock:
            self._terminate()
        # The listening socket is closed once the process is gone; make sure of it so
        # that "stopped" really means "connections are refused".
        deadline = time.monotonic() + self.STOP_TIMEOUT
        while port_accepts(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop and start again with the same configuration and port."""
        with self._lock:
            self.stop()
            self.start()

    def close(self) -> None:
        """Stop the broker and remove its temporary directory."""
        with self._lock:
            self._terminate()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        atexit.unregister(self.close)


@dataclass
class Broker:
    """The MQTT broker the tests run against (what the ``broker`` fixture returns).

    ``restart`` is None when the fixture cannot control the broker (``MQTT_URL`` or a
    container); :meth:`stop`, :meth:`start` and :meth:`restart` then skip the calling
    test. Use the ``restartable_broker`` fixture to skip up front.

    The ``stop``/``start``/``restart`` methods block for up to a few seconds; from a
    coroutine whose event loop also runs the code under test, prefer the ``a*``
    variants, which run them in a thread and keep the loop (and the bridge) running.
    """

    host: str
    port: int
    url: str
    restart: Callable[[], None] | None = None
    kind: str = "external"
    """``"mosquitto"`` (a process we started), ``"container"`` or ``"external"``."""
    process: MosquittoProcess | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, kind: str = "external") -> Broker:
        """A broker we only know the address of (not restartable)."""
        host, port = parse_mqtt_url(url)
        return cls(host=host, port=port, url=url, kind=kind)

    @classmethod
    def from_process(cls, process: MosquittoProcess) -> Broker:
        """A broker backed by a :class:`MosquittoProcess` (restartable)."""
        return cls(
            host=process.host,
            port=process.port,
            url=process.url,
            restart=process.restart,
            kind="mosquitto",
            process=process,
        )

    @property
    def can_restart(self) -> bool:
        """True when stop/start/restart are supported."""
        return self.process is not None

    def _require_process(self) -> MosquittoProcess:
        if self.process is None:
            pytest.skip(f"broker restart not supported for a {self.kind} broker ({self.url})")
        return self.process

    def stop(self) -> None:
        """Stop the broker (connections are refused until :meth:`start`)."""
        self._require_process().stop()

    def start(self) -> None:
        """Start the broker again on the same port; returns once it accepts."""
        self._require_process().start()

    def is_running(self) -> bool:
        """True when the broker accepts connections (always assumed for others)."""
        if self.process is None:
            return True
        return self.process.is_running()

    def ensure_running(self) -> None:
        """Start the broker if a test left it stopped (no-op when not controllable)."""
        if self.process is not None and not self.process.is_running():
            self.process.start()

    async def astop(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        process = self._require_process()
        await asyncio.to_thread(process.stop)

    async def astart(self) -> None:
        """:meth:`start` without blocking the event loop."""
        process = self._require_process()
        await asyncio.to_thread(process.start)

    async def arestart(self) -> None:
        """``restart()`` without blocking the event loop."""
        process = self._require_process()
        await asyncio.to_thread(process.restart)
