"""Checks of the deployment files in deploy/ (container, compose, Mosquitto, systemd, udev).

Tools that may be missing (docker compose, systemd-analyze, mosquitto) make their
tests skip with the reason; nothing here needs a Docker engine or a network.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from support.broker import MosquittoProcess, find_mosquitto, shipped_broker
from support.mqtt_client import publish
from support.net import free_port, wait_port
from support.recorder import Recorder

from conduyt_bridge.northbound.conduyt.claims import Claim
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "conduyt-bridge.service"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"
ACL = DEPLOY / "mosquitto" / "acl"
UDEV_RULES = DEPLOY / "99-conduyt.rules"
CONTAINER_CONFIG = DEPLOY / "config" / "config.toml"

# What docker compose interpolates from deploy/.env, which is not in git.
COMPOSE_ENV = {
    "CONDUYT_BRIDGE_MQTT__USERNAME": "conduyt-bridge",
    "CONDUYT_BRIDGE_MQTT__PASSWORD": "test-password",
}


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, **kwargs)


# --------------------------------------------------------------------------------------
# docker compose
# --------------------------------------------------------------------------------------


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and _run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone and _run([standalone, "version"]).returncode == 0:
        return [standalone]
    return None


def test_compose_config_is_valid() -> None:
    compose = _compose_command()
    if compose is None:
        pytest.skip("no docker client with the compose plugin (nor docker-compose) here")
    env = {**os.environ, **COMPOSE_ENV}
    result = _run([*compose, "-f", str(COMPOSE), "config", "-q"], env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_compose_file_content() -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = doc["services"]
    assert set(services) >= {"mosquitto", "conduyt-bridge"}

    mosquitto = services["mosquitto"]
    assert mosquitto["image"] == "eclipse-mosquitto:2"
    assert mosquitto["restart"] == "unless-stopped"
    assert "healthcheck" in mosquitto
    mounts = {v.split(":")[1]: v.split(":")[0] for v in mosquitto["volumes"]}
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./mosquitto/mosquitto.conf"
    # the secrets go to start.sh (read-only), which hands the broker private copies
    assert mounts["/run/conduyt-secrets/acl"] == "./mosquitto/acl"
    assert mounts["/run/conduyt-secrets/passwd"] == "./mosquitto/passwd"
    assert mounts["/conduyt/start.sh"] == "./mosquitto/start.sh"
    assert mosquitto["command"] == ["/bin/sh", "/conduyt/start.sh"]
    assert all(v.endswith(":ro") for v in mosquitto["volumes"] if v.startswith("./"))
    for target, source in mounts.items():
        # the password file is created on the host (see mosquitto.conf); volumes are named
        if source.startswith("./") and not target.endswith("/passwd"):
            assert (DEPLOY / source).exists(), source

    bridge = services["conduyt-bridge"]
    assert bridge["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    context = (DEPLOY / bridge["build"]["context"]).resolve()
    assert context == REPO
    assert (context / bridge["build"]["dockerfile"]) == DOCKERFILE
    assert bridge["restart"] == "unless-stopped"
    # The ownership record's `host` must survive a recreate (a `client_id` rename).
    assert bridge["hostname"] == "conduyt-bridge"
    assert "/dev/ttyUSB0:/dev/ttyUSB0" in bridge["devices"]
    assert "dialout" in bridge["group_add"]
    assert "./config:/config:ro" in bridge["volumes"]
    assert bridge["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    env = bridge["environment"]
    assert env["CONDUYT_BRIDGE_MQTT__URL"] == "mqtt://mosquitto:1883"
    assert "CONDUYT_BRIDGE_MQTT__USERNAME" in env["CONDUYT_BRIDGE_MQTT__USERNAME"]
    assert "CONDUYT_BRIDGE_MQTT__PASSWORD" in env["CONDUYT_BRIDGE_MQTT__PASSWORD"]
    assert CONTAINER_CONFIG.is_file()


def test_env_example_names_the_compose_variables() -> None:
    text = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    for name in COMPOSE_ENV:
        assert re.search(rf"^{name}=", text, re.MULTILINE), name


def test_container_config_example() -> None:
    import tomllib

    config = tomllib.loads(CONTAINER_CONFIG.read_text(encoding="utf-8"))
    # Loopback in the container: no token needed, --health works (docs/console.md §1).
    assert config["http"]["listen"] == "127.0.0.1:9105"
    assert config["devices"][0]["port"] == "/dev/ttyUSB0"
    assert config["mqtt"]["url"] == "mqtt://mosquitto:1883"
    assert "password" not in config["mqtt"]  # comes from the environment


def _compose_bridge_env(dot_env: dict[str, str]) -> dict[str, str]:
    """The bridge container's environment as compose interpolates it from `dot_env`."""
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for name, value in doc["services"]["conduyt-bridge"]["environment"].items():

        def sub(m: re.Match[str]) -> str:
            var, op, default = m.group(1), m.group(2), m.group(3)
            if dot_env.get(var):
                return dot_env[var]
            assert op == ":-", f"{var} must be set: {default}"
            return default

        env[name] = re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", sub, str(value))
    return env


@pytest.mark.parametrize(
    ("dot_env", "code", "output"),
    [
        ({}, 0, '"listen": "127.0.0.1:9105"'),  # .env as shipped: first start works
        (
            {"CONDUYT_BRIDGE_HTTP__LISTEN": "0.0.0.0:9105"},
            2,
            "http.token: listen address '0.0.0.0' is reachable from other hosts: set "
            "[http] token (or listen on 127.0.0.1)",
        ),
        (
            {"CONDUYT_BRIDGE_HTTP__LISTEN": "0.0.0.0:9105", "CONDUYT_BRIDGE_HTTP__TOKEN": "t" * 32},
            0,
            '"listen": "0.0.0.0:9105"',
        ),
    ],
)
def test_the_container_config_loads_with_the_compose_environment(
    dot_env: dict[str, str], code: int, output: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUYT_BRIDGE_")}
    env |= _compose_bridge_env({**COMPOSE_ENV, **dot_env})
    cli = shutil.which("conduyt-bridge")
    assert cli is not None, "pip install -e . installs the conduyt-bridge command"
    result = _run([cli, "--check", "--config", str(CONTAINER_CONFIG)], env=env)
    assert result.returncode == code, result.stdout + result.stderr
    assert output in result.stdout + result.stderr


# --------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs; continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        current = ""
    return instructions


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    stages = _stages(instructions)
    assert all(s[0][1].startswith("python:3.11-slim") for s in stages)
    final = stages[-1]
    kinds = [k for k, _ in final]

    users = [args for k, args in final if k == "USER"]
    assert users, "the final stage must switch to a non-root USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert users[-1] == "conduyt"
    assert any("useradd" in args and "dialout" in args for k, args in final if k == "RUN")

    health = [args for k, args in final if k == "HEALTHCHECK"]
    assert len(health) == 1
    assert '"--health"' in health[0] and '"/config/config.toml"' in health[0]
    assert "CMD" in kinds
    cmd = next(args for k, args in reversed(final) if k == "CMD")
    assert cmd == '["conduyt-bridge", "--config", "/config/config.toml"]'

    # Small image: no compiler or apt lists left in the final stage, no pip cache.
    final_runs = " ".join(args for k, args in final if k == "RUN")
    assert "gcc" not in final_runs and "build-essential" not in final_runs
    for k, args in instructions:
        if k == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args
        if k == "RUN" and "apt-get install" in args:
            assert "rm -rf /var/lib/apt/lists/*" in args

    # Everything COPYed from the build context exists and gets past the .dockerignore.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for k, args in instructions:
        if k != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = shlex.split(args)
        for source in sources:
            if source != "README.md":  # required by pyproject.toml; written by the docs
                assert (REPO / source).exists(), source
            assert f"!{source.rstrip('/')}" in ignore, f"{source} excluded by .dockerignore"


# --------------------------------------------------------------------------------------
# systemd unit
# --------------------------------------------------------------------------------------


def _unit_settings(text: str) -> dict[str, list[str]]:
    """``"Section.Key" -> [values]`` of a unit file (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def test_unit_settings() -> None:
    s = _unit_settings(UNIT.read_text(encoding="utf-8"))
    expected = {
        "Service.DynamicUser": "yes",
        "Service.SupplementaryGroups": "dialout",
        "Service.ProtectSystem": "strict",
        "Service.ProtectHome": "yes",
        "Service.PrivateTmp": "yes",
        "Service.NoNewPrivileges": "yes",
        "Service.DevicePolicy": "closed",
        "Service.ConfigurationDirectory": "conduyt-bridge",
        "Service.Restart": "on-failure",
        "Service.RestartSec": "5",
        "Service.Environment": "PYTHONUNBUFFERED=1",
        "Service.EnvironmentFile": "-/etc/conduyt-bridge/env",
        "Service.ExecStart": (
            "/opt/conduyt-bridge/bin/conduyt-bridge --config /etc/conduyt-bridge/config.toml"
        ),
        "Unit.After": "network-online.target",
        "Unit.Wants": "network-online.target",
        "Install.WantedBy": "multi-user.target",
    }
    for key, value in expected.items():
        assert value in s.get(key, []), f"{key}={value} missing"
    allowed = s["Service.DeviceAllow"]
    assert "char-ttyUSB rw" in allowed and "char-ttyACM rw" in allowed


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed")
    return tool


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine.

    systemd-analyze verify checks that the ExecStart binary exists, and the bridge is
    not installed in /opt/conduyt-bridge on a test machine: a fake `conduyt-bridge` in a
    temporary directory stands in for it (same arguments).
    """
    text = UNIT.read_text(encoding="utf-8")
    fake = tmp_path / "bin" / "conduyt-bridge"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    fake.chmod(0o755)
    patched, count = re.subn(
        r"^ExecStart=/opt/conduyt-bridge/bin/conduyt-bridge\b",
        f"ExecStart={fake}",
        text,
        flags=re.M,
    )
    assert count == 1
    copy = tmp_path / UNIT.name
    copy.write_text(patched, encoding="utf-8")
    return copy


def test_unit_verifies(unit_copy: Path) -> None:
    tool = _systemd_analyze()
    result = _run([tool, "verify", str(unit_copy)])
    # Only complaints about our unit count; a container may add unrelated noise.
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line or str(unit_copy) in line
    ]
    assert result.returncode == 0, result.stderr
    assert ours == []


def test_unit_exposure_is_low(unit_copy: Path) -> None:
    tool = _systemd_analyze()
    if "--offline" not in _run([tool, "--help"]).stdout:
        pytest.skip("systemd-analyze too old for `security --offline`")
    result = _run([tool, "security", "--offline=true", "--threshold=30", str(unit_copy)])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


# --------------------------------------------------------------------------------------
# Mosquitto configuration and ACL
# --------------------------------------------------------------------------------------


def _conf_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value.strip())
    return settings


def _acl_rules(text: str) -> dict[str | None, set[tuple[str, str]]]:
    """``user -> {(access, topic)}`` (``None``: rules before any ``user`` line)."""
    rules: dict[str | None, set[tuple[str, str]]] = {}
    user: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user":
            user = words[1]
            rules.setdefault(user, set())
        elif words[0] == "topic":
            access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            rules.setdefault(user, set()).add((access, topic))
        else:
            pytest.fail(f"unexpected ACL line: {line}")
    return rules


def test_mosquitto_conf() -> None:
    s = _conf_settings(MOSQUITTO_CONF.read_text(encoding="utf-8"))
    assert s["listener"] == ["1883"]
    assert s["allow_anonymous"] == ["false"]
    # the private copies start.sh makes
    assert s["password_file"] == ["/mosquitto/secrets/passwd"]
    assert s["acl_file"] == ["/mosquitto/secrets/acl"]
    assert s["persistence"] == ["true"]
    # broker-side Nagle off: otherwise ~40 ms more per command round trip
    assert s["set_tcp_nodelay"] == ["true"]
    assert "mosquitto_passwd" in MOSQUITTO_CONF.read_text(encoding="utf-8")


def test_acl_grants_exactly_the_bridge_topics() -> None:
    rules = _acl_rules(ACL.read_text(encoding="utf-8"))
    assert None not in rules, "no rules for anonymous clients"
    bridge = {
        ("readwrite", "conduyt/#"),
        ("readwrite", "homeassistant/#"),
        ("readwrite", "homie/#"),
        ("readwrite", "spBv1.0/#"),
    }
    # HA reads the bridge's topics but writes only the command topics: never a board's
    # claim (`conduyt/+/owner`) nor a bridge's state, inventory or health.
    commands = BridgeTopics("conduyt", "gw").device("+").command_filters()
    ha = {("readwrite", "homeassistant/#"), ("read", "conduyt/#")}
    ha |= {("write", topic) for topic in commands}
    # The request API's access control is this ACL (`docs/requests.md`): only the
    # administrator's user may publish requests; Home Assistant may not.
    admin = {
        ("write", "conduyt/bridge/+/request/#"),
        ("read", "conduyt/bridge/+/response/#"),
        ("read", "conduyt/bridge/+/devices"),
    }
    assert rules == {"conduyt-bridge": bridge, "homeassistant": ha, "conduyt-admin": admin}
    assert not any("request" in topic for _, topic in ha)
    for access, topic in ha:
        if "write" in access:
            assert not topic.endswith("/owner") and not topic.startswith("conduyt/bridge/")


@pytest.fixture
def deploy_broker() -> Iterator[MosquittoProcess]:
    """A local mosquitto running deploy/mosquitto's conf + acl with a real password file."""
    binary = find_mosquitto()
    if binary is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs the mosquitto and mosquitto_passwd binaries")
    process = shipped_broker(binary, ("conduyt-bridge", "homeassistant"))
    try:
        yield process
    finally:
        process.close()


async def test_deploy_mosquitto_auth_and_acl(deploy_broker: MosquittoProcess) -> None:
    broker = deploy_broker
    with pytest.raises(aiomqtt.MqttError):  # anonymous refused
        await publish(broker, "conduyt/x", "anon", timeout=3)
    with pytest.raises(aiomqtt.MqttError):  # wrong password refused
        await publish(broker, "conduyt/x", "bad", username="conduyt-bridge", password="no")

    ha = {"username": "homeassistant", "password": "pw-homeassistant"}
    bridge = {"username": "conduyt-bridge", "password": "pw-conduyt-bridge"}
    async with Recorder(broker, "#", **ha) as rec:
        await publish(broker, "secret/x", "denied", **bridge)
        await publish(broker, "homeassistant/sensor/b/config", "{}", **bridge)
        await publish(broker, "conduyt/b/status", "online", **bridge)
        await rec.wait_for("conduyt/b/status", payload="online")
        await rec.wait_for("homeassistant/sensor/b/config")
        assert rec.messages("secret/#") == []
    async with Recorder(broker, "conduyt/#", "homeassistant/#", **bridge) as rec:
        # HA cannot forge a claim or a bridge's state (the broker drops them silently).
        forged = Claim("ha-forged", "s", time.time()).encode()
        await publish(broker, "conduyt/b/owner", forged, retain=True, **ha)
        await publish(broker, "conduyt/bridge/gw/state", "offline", retain=True, **ha)
        await publish(broker, "conduyt/bridge/gw/health", "{}", **ha)
        await publish(broker, "conduyt/b/ds/setpoint/set", "21", **ha)
        await publish(broker, "conduyt/b/cmd/reboot", "{}", **ha)
        await publish(broker, "homeassistant/status", "online", **ha)
        await rec.wait_for("conduyt/b/ds/setpoint/set", payload="21")
        await rec.wait_for("conduyt/b/cmd/reboot", payload="{}")
        await rec.wait_for("homeassistant/status", payload="online")
        assert rec.messages("conduyt/+/owner") == []
        assert rec.messages("conduyt/bridge/#") == []
    # ... while the bridge can, and HA still reads what the bridge publishes there.
    async with Recorder(broker, "conduyt/#", **ha) as rec:
        await publish(broker, "conduyt/b/owner", forged, retain=True, **bridge)
        await publish(broker, "conduyt/bridge/gw/state", "online", retain=True, **bridge)
        await rec.wait_for("conduyt/b/owner", payload=forged)
        await rec.wait_for("conduyt/bridge/gw/state", payload="online")


def test_mosquitto_accepts_the_shipped_conf(deploy_broker: MosquittoProcess) -> None:
    """The broker ran the shipped file, `set_tcp_nodelay` included, without a complaint."""
    ran = deploy_broker.config_path.read_text(encoding="utf-8")
    assert re.search(r"^set_tcp_nodelay true$", ran, re.M)
    assert deploy_broker.is_running()
    log = deploy_broker.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Error" not in log and "Warning" not in log and "Unknown" not in log, log


def _mosquitto_account() -> tuple[int, int]:
    import pwd

    if os.geteuid() != 0:
        pytest.skip("start.sh runs as root (as in the container) to hand files to mosquitto")
    try:
        account = pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no `mosquitto` account here (the image's broker user)")
    return account.pw_uid, account.pw_gid


def _start_broker(cmd: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    if not wait_port("127.0.0.1", port, timeout=10, alive=lambda: proc.poll() is None):
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        pytest.fail(f"broker did not start (exit {proc.returncode}):\n{out}")
    return proc


def test_start_sh_serves_a_root_owned_password_file(tmp_path: Path) -> None:
    """The Docker quick start: `mosquitto_passwd` run as root leaves a `0600` passwd owned
    by root, which the broker (running as `mosquitto`) cannot open. Given that file
    directly, the real mosquitto exits; through `deploy/mosquitto/start.sh` (the compose
    service's command, the same layout with temporary paths) it serves logins."""
    binary = find_mosquitto()
    passwd_tool = shutil.which("mosquitto_passwd")
    if binary is None or passwd_tool is None:
        pytest.skip("needs the mosquitto and mosquitto_passwd binaries")
    uid, _ = _mosquitto_account()
    # the broker user must reach /mosquitto/secrets, as in the image (pytest's tmp is 0700)
    root = Path(tempfile.mkdtemp(prefix="conduyt-container-"))
    root.chmod(0o755)
    try:
        _serve_through_start_sh(binary, passwd_tool, uid, root, tmp_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve_through_start_sh(
    binary: str, passwd_tool: str, uid: int, root: Path, tmp_path: Path
) -> None:
    src = root / "run" / "conduyt-secrets"  # the read-only mounts of the host's files
    dst = root / "mosquitto" / "secrets"
    data = root / "mosquitto" / "data"
    src.mkdir(parents=True)
    data.mkdir(parents=True)
    shutil.copy(ACL, src / "acl")
    made = _run([passwd_tool, "-c", "-b", str(src / "passwd"), "conduyt-bridge", "pw"])
    assert made.returncode == 0, made.stderr
    os.chmod(src / "passwd", 0o600)
    os.chown(data, uid, -1)
    (root / "mosquitto").chmod(0o755)
    port = free_port()
    conf = MOSQUITTO_CONF.read_text(encoding="utf-8")
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.M)
    conf = conf.replace("/mosquitto/data/", f"{data}/")
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}

    direct = tmp_path / "direct.conf"
    direct.write_text(conf.replace("/mosquitto/secrets/", f"{src}/"), encoding="utf-8")
    failed = _run([binary, "-c", str(direct)], env=env)
    assert failed.returncode != 0
    assert "Unable to open pwfile" in failed.stdout + failed.stderr

    shipped = tmp_path / "mosquitto.conf"
    shipped.write_text(conf.replace("/mosquitto/secrets/", f"{dst}/"), encoding="utf-8")
    env |= {
        "CONDUYT_SECRETS_SRC": str(src),
        "CONDUYT_SECRETS_DIR": str(dst),
        "CONDUYT_MOSQUITTO_CONF": str(shipped),
    }
    proc = _start_broker(["/bin/sh", str(DEPLOY / "mosquitto" / "start.sh")], port, env)
    try:
        for path, mode in ((dst, 0o700), (dst / "passwd", 0o600), (dst / "acl", 0o600)):
            st = path.stat()
            assert (st.st_uid, st.st_mode & 0o777) == (uid, mode), path
        asyncio.run(_logins(f"mqtt://127.0.0.1:{port}"))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "Error" not in out and "Warning" not in out, out


async def _logins(url: str) -> None:
    await publish(url, "conduyt/x/status", "online", username="conduyt-bridge", password="pw")
    with pytest.raises(aiomqtt.MqttError):
        await publish(url, "conduyt/x", "bad", username="conduyt-bridge", password="no")


def test_start_sh_names_a_missing_password_file(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONDUYT_SECRETS_SRC": str(tmp_path),
        "CONDUYT_SECRETS_DIR": str(tmp_path / "secrets"),
    }
    (tmp_path / "acl").write_text("", encoding="utf-8")
    result = _run(["/bin/sh", str(DEPLOY / "mosquitto" / "start.sh")], env=env)
    assert result.returncode == 78
    assert result.stderr == (
        f"conduyt: {tmp_path}/passwd is missing: create deploy/mosquitto/passwd first "
        "(see deploy/mosquitto/mosquitto.conf)\n"
    )
    assert not (tmp_path / "secrets").exists()


# --------------------------------------------------------------------------------------
# udev rules
# --------------------------------------------------------------------------------------

_UDEV_PAIR = re.compile(r'^\s*([A-Z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*$')


def test_udev_rules() -> None:
    vendors: set[str] = set()
    for raw in UDEV_RULES.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pairs = [_UDEV_PAIR.match(part) for part in line.split(",")]
        assert all(pairs), f"unparsable udev rule: {line}"
        keys = {m.group(1): (m.group(2), m.group(3)) for m in pairs if m}
        if "SYMLINK" in keys:
            assert keys["SYMLINK"][0] == "+="
            assert keys["SYMLINK"][1].startswith("conduyt-")
            assert keys.get("MODE") == ("=", "0660")
            assert keys.get("GROUP") == ("=", "dialout")
            vendors.add(keys["ENV{ID_VENDOR_ID}"][1])
    assert vendors == {"2341", "1a86", "10c4", "303a"}


async def test_bridge_runs_against_the_deployed_broker(
    deploy_broker: MosquittoProcess, tmp_path: Path
) -> None:
    """The shipped mosquitto.conf + ACL with a password from a password_file: the bridge
    logs in, its board goes online under `conduyt/`, and a command reaches it."""
    from conduyt_bridge.app.config import Settings
    from conduyt_bridge.app.daemon import Bridge

    password_file = tmp_path / "password"
    password_file.write_text("pw-conduyt-bridge\n")
    settings = Settings(
        mqtt={
            "url": deploy_broker.url,
            "client_id": "deploy-test",
            "username": "conduyt-bridge",
            "password_file": str(password_file),
        },
        homeassistant={"enabled": False},
        devices=[{"id": "sim", "port": "sim://thermostat"}],
    )
    ha = {"username": "homeassistant", "password": "pw-homeassistant"}
    bridge = Bridge(settings)
    task = asyncio.create_task(bridge.run())
    try:
        async with Recorder(deploy_broker, "conduyt/sim/#", **ha) as rec:
            await rec.wait_for("conduyt/sim/status", payload="online", timeout=10)
            await publish(deploy_broker, "conduyt/sim/ds/heater/set", "on", **ha)
            await rec.wait_for("conduyt/sim/ds/heater", payload="true")
        assert bridge.mqtt.refused_subscriptions == set()
    finally:
        bridge.stop()
        await asyncio.wait_for(task, 15)


async def _link_down_events(settings: Any, count: int = 2) -> list[dict[str, Any]]:
    """The first `count` `broker link down` log events of a bridge run with `settings`."""
    from structlog.testing import capture_logs
    from support.harness import wait_until

    from conduyt_bridge.app.daemon import Bridge

    bridge = Bridge(settings)
    with capture_logs() as logs:
        task = asyncio.create_task(bridge.run())
        try:
            await wait_until(
                lambda: len([e for e in logs if e["event"] == "broker link down"]) >= count, 10
            )
        finally:
            bridge.stop()
            await asyncio.wait_for(task, 15)
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs
    return [e for e in logs if e["event"] == "broker link down"][:count]


def _bridge_settings(url: str, **mqtt: Any) -> Any:
    from conduyt_bridge.app.config import Settings

    return Settings(
        mqtt={"url": url, "client_id": "deploy-login-test", "reconnect_max_s": 30, **mqtt},
        homeassistant={"enabled": False},
        devices=[{"id": "sim", "port": "sim://thermostat"}],
    )


async def test_wrong_password_is_named_plainly_at_warning_level(
    deploy_broker: MosquittoProcess,
) -> None:
    settings = _bridge_settings(deploy_broker.url, username="conduyt-bridge", password="wrong")
    events = await _link_down_events(settings)
    assert [{k: e[k] for k in ("log_level", "url", "error", "retry_in_s")} for e in events] == [
        {
            "log_level": "warning",
            "url": deploy_broker.url,
            "error": "broker refused the login: bad username or password",
            "retry_in_s": backoff,
        }
        for backoff in (0.5, 1.0)
    ]


async def test_anonymous_login_refused_names_the_missing_credentials(
    deploy_broker: MosquittoProcess,
) -> None:
    (event,) = await _link_down_events(_bridge_settings(deploy_broker.url), count=1)
    assert (event["log_level"], event["error"]) == (
        "warning",
        "broker refused the login: not authorized (anonymous access is off: set "
        "[mqtt] username and password)",
    )


async def test_unreachable_broker_stays_a_warning_with_url_and_backoff() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    events = await _link_down_events(_bridge_settings(url), count=3)
    assert [(e["log_level"], e["url"], e["retry_in_s"]) for e in events] == [
        ("warning", url, 0.5),
        ("warning", url, 1.0),
        ("warning", url, 2.0),
    ]
    assert {e["error"] for e in events} == {"[Errno 111] Connection refused"}
