# Sourced by the GPU machine's scripts (bench/gpu-session.sh, bench/gpu-train.sh): makes the
# libraries percept needs there findable. That machine (Ubuntu 24.04) has no package
# registry; Debian 12's packages in tools/device/debs are unpacked with dpkg -x into
# /tmp/percept-deps: cJSON always (the core needs it), GLib (the trainer) and pkgconf
# (meson's dependency lookup) only where the machine has none of its own.
deps=/tmp/percept-deps
debs="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debs"
mkdir -p "$deps"
unpack() { for p in "$@"; do dpkg -x "$debs"/"$p"_*.deb "$deps"; done; }
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$deps/usr/bin:$PATH
export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
command -v pkg-config > /dev/null || unpack pkgconf pkgconf-bin libpkgconf3
unpack libcjson1 libcjson-dev
pkg-config --exists glib-2.0 || unpack libglib2.0-0 libglib2.0-dev
# the .pc files name /usr; GLib's private requirement (PCRE2's .pc) is not needed to link
# against the shared library, and the machine may lack it
for pc in "$deps"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
    sed -i -e "s|=/usr\$|=$deps/usr|; s|=/usr/|=$deps/usr/|" -e '/^Requires.private:/d' "$pc"
done
