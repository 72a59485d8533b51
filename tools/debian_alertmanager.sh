#!/bin/sh
# Alertmanager 0.28 from Debian trixie, unpacked into .cache/alertmanager/ (ADR 0027).
#
# Bookworm's prometheus-alertmanager is 0.25, which has no `bot_token_file` for Telegram: the
# token would have to sit in alertmanager.yml. The trixie package is the same upstream binary
# built by Debian, linked against libc alone; apt-get downloads it with a package list of its
# own (nothing under /etc is written, nothing installed system-wide). Run again: it does nothing.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/.cache/alertmanager"
if [ -x "$DEST/usr/bin/amtool" ] && [ -x "$DEST/usr/bin/prometheus-alertmanager" ]; then
    exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/archives/partial"
echo "deb http://deb.debian.org/debian trixie main" > "$WORK/sources.list"
set -- -o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache::Archives=$WORK/archives" \
    -o APT::Sandbox::User=root -qq
apt-get "$@" update
(cd "$WORK" && apt-get "$@" download prometheus-alertmanager)
rm -rf "$DEST" && mkdir -p "$DEST"
dpkg-deb -x "$WORK"/prometheus-alertmanager_*.deb "$DEST"
"$DEST/usr/bin/amtool" --version 2>&1 | head -1
