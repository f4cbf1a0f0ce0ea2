#!/bin/sh
# meson install script: install the example configuration at $1 from $2,
# unless a file is there already (an operator's settings are never replaced).
set -eu
dest="${DESTDIR:-}$1"
if [ -e "$dest" ]; then
    echo "Keeping $dest (the example is $2)"
else
    install -D -m 0644 "$2" "$dest"
    echo "Installing $2 to $dest"
fi
