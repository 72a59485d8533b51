#!/bin/sh
# Alertmanager 0.28 from Debian trixie, unpacked into .cache/alertmanager/ (ADR 0027).
#
# Bookworm's prometheus-alertmanager is 0.25, which has no `bot_token_file` for Telegram: the
# token would have to sit in alertmanager.yml. The trixie package is the same upstream binary
# built by Debian, linked against libc alone; apt-get downloads it with a package list of its
# own (nothing under /etc is written, no package installed). Two files go system-wide:
# Debian's build reads Alertmanager's built-in templates (default.tmpl, email.tmpl) from a
# fixed path, /usr/share/prometheus/alertmanager/, and without them Alertmanager loads its
# config but refuses to apply it (no notification is ever sent). Run again: it does nothing.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/.cache/alertmanager"
SHARED=/usr/share/prometheus/alertmanager
install_builtin_templates() {
    for template in default.tmpl email.tmpl; do
        if [ ! -f "$SHARED/$template" ]; then
            install -D -m 0644 "$DEST$SHARED/$template" "$SHARED/$template"
            echo "installed $SHARED/$template (one of Alertmanager's built-in templates)"
        fi
    done
}
if [ -x "$DEST/usr/bin/amtool" ] && [ -x "$DEST/usr/bin/prometheus-alertmanager" ]; then
    install_builtin_templates
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
install_builtin_templates
"$DEST/usr/bin/amtool" --version 2>&1 | head -1
