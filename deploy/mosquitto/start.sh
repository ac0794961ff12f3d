#!/bin/sh
# Start Mosquitto in the eclipse-mosquitto:2 container (deploy/docker-compose.yml runs
# this as the service's command, as root, before the broker drops to its `mosquitto` user).
#
# Why: the broker opens password_file and acl_file as the unprivileged `mosquitto` user
# (uid 1883 in the image), so a passwd created with `mosquitto_passwd` as root, mode 0600,
# cannot be read ("Error: Unable to open pwfile") and the container exits; made readable
# for everybody instead, Mosquitto 2 warns that future versions will refuse it. The host's
# files are mounted read-only (the image's own chown cannot fix them), so we copy them
# into a directory only `mosquitto` can enter, owned by it, mode 0600, whoever owns them
# on the host. A changed passwd or acl therefore takes effect with
# `docker compose restart mosquitto`, not with SIGHUP.
set -eu

src="${CONDUYT_SECRETS_SRC:-/run/conduyt-secrets}"
dst="${CONDUYT_SECRETS_DIR:-/mosquitto/secrets}"
conf="${CONDUYT_MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}"

for name in passwd acl; do
    if [ ! -f "$src/$name" ]; then
        echo "conduyt: $src/$name is missing: create deploy/mosquitto/$name first (see deploy/mosquitto/mosquitto.conf)" >&2
        exit 78
    fi
done
install -d -o mosquitto -g mosquitto -m 0700 "$dst"
install -o mosquitto -g mosquitto -m 0600 "$src/passwd" "$src/acl" "$dst/"
exec mosquitto -c "$conf"
