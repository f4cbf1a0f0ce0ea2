#!/usr/bin/env bash
# Check that "meson install" with DESTDIR puts every file where Debian
# expects it: binaries, library, header, pkg-config file, systemd units,
# configuration and man pages; that a program builds against the installed
# header and library; and that the installed daemon runs. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
meson setup "$work/build" --prefix=/usr --buildtype=release >/dev/null
ninja -C "$work/build" >/dev/null
DESTDIR="$work/root" meson install -C "$work/build" --no-rebuild >/dev/null
root=$work/root
ma=$(gcc -print-multiarch)
version=$(meson introspect --projectinfo "$work/build" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /usr/lib/systemd/system)

status=0
for f in usr/sbin/rendezvousd usr/bin/rendezvousctl \
         "usr/lib/$ma/librendezvous.so" "usr/lib/$ma/librendezvous.so.0" \
         "usr/lib/$ma/librendezvous.so.$version" usr/include/rendezvous.h \
         usr/include/rendezvous_version.h \
         "usr/lib/$ma/pkgconfig/rendezvous.pc" \
         "${unitdir#/}/rendezvousd.service" "${unitdir#/}/rendezvousd.socket" \
         etc/rendezvous/rendezvousd.conf \
         usr/share/man/man8/rendezvousd.8 usr/share/man/man1/rendezvousctl.1 \
         usr/share/man/man5/rendezvousd.conf.5; do
    if [ -e "$root/$f" ]; then
        echo "installed /$f"
    else
        echo "MISSING /$f" >&2
        status=1
    fi
done
# Nothing else: an unexpected file is a packaging surprise.
extra=$(cd "$root" && find . -type f -o -type l | sed 's|^\./||' | grep -vE \
    "^(usr/sbin/rendezvousd|usr/bin/rendezvousctl|usr/lib/$ma/librendezvous\.so.*|usr/include/rendezvous(_version)?\.h|usr/lib/$ma/pkgconfig/rendezvous\.pc|${unitdir#/}/rendezvousd\.(service|socket)|etc/rendezvous/rendezvousd\.conf|usr/share/man/man[158]/rendezvous.*)$" || true)
if [ -n "$extra" ]; then
    echo "unexpected files: $extra" >&2
    status=1
fi
grep -q "^ExecStart=/usr/sbin/rendezvousd" "$root/${unitdir#/}/rendezvousd.service" ||
    { echo "the unit does not run /usr/sbin/rendezvousd" >&2; status=1; }

# A client program, built with the installed pkg-config file, header and library.
cat > "$work/client.c" <<'C'
#include <rendezvous.h>
#include <stdio.h>
int main(void) { printf("%s %s\n", rv_state_name(RSS_CONNECTED), RV_VERSION); return 0; }
C
flags=$(PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$root/usr/lib/$ma/pkgconfig" \
        pkg-config --cflags --libs rendezvous)
gcc -o "$work/client" "$work/client.c" $flags
[ "$(LD_LIBRARY_PATH="$root/usr/lib/$ma" "$work/client")" = "RSS_CONNECTED $version" ] ||
    { echo "a program built against the installed library does not run" >&2; status=1; }
LD_LIBRARY_PATH="$root/usr/lib/$ma" "$root/usr/sbin/rendezvousd" --version
LD_LIBRARY_PATH="$root/usr/lib/$ma" "$root/usr/sbin/rendezvousd" \
    --config "$root/etc/rendezvous/rendezvousd.conf" --check-config --store memory

# Installing again keeps an operator's configuration.
echo "# edited" >> "$root/etc/rendezvous/rendezvousd.conf"
DESTDIR="$root" meson install -C "$work/build" --no-rebuild >/dev/null
grep -q "^# edited" "$root/etc/rendezvous/rendezvousd.conf" ||
    { echo "meson install replaced the configuration file" >&2; status=1; }

[ $status -eq 0 ] && echo "install layout OK"
exit $status
