# Sourced by tools/training-data.sh and tools/eval-data.sh.
# fetch PKG: make sure $EXTRACT/PKG holds the unpacked Debian package, downloaded with
# `apt-get download` into $DEBS (nothing is installed system-wide). Fails, with a message,
# when the package is not in the archive or its .deb is over $MAX_DEB_MB (default 300) MB.
# A complete extraction is marked by PKG/.version, so re-running is cheap.
fetch() {
    local pkg=$1 out=$EXTRACT/$1 deb size policy
    [[ -f $out/.version ]] && return 0
    # (captured first: `apt-cache ... | grep -q` can die of SIGPIPE under pipefail)
    policy=$(apt-cache policy "$pkg" 2>/dev/null)
    if ! grep -q 'Candidate: [^(]' <<< "$policy"; then
        echo "skip $pkg: not in the apt archive" >&2; return 1
    fi
    size=$(apt-cache show --no-all-versions "$pkg" | awk '/^Size:/ {print $2}')
    if (( size > ${MAX_DEB_MB:-300} * 1024 * 1024 )); then
        echo "skip $pkg: .deb is $((size / 1048576)) MB (> ${MAX_DEB_MB:-300} MB)" >&2; return 1
    fi
    mkdir -p "$DEBS"
    deb=$(ls "$DEBS/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
    if [[ -z $deb ]]; then
        # -o Sandbox: root downloads into a folder the _apt user may not be able to write.
        ( cd "$DEBS" && apt-get -q -o APT::Sandbox::User=root download "$pkg" ) ||
            { apt-get -q update && ( cd "$DEBS" && apt-get -q -o APT::Sandbox::User=root download "$pkg" ); }
        deb=$(ls "$DEBS/${pkg}_"*.deb | head -n1)
    fi
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    dpkg -x "$deb" "$out.tmp"
    dpkg-deb -f "$deb" Version > "$out.tmp/.version"   # marks a complete extraction
    rm -rf "$out" && mv "$out.tmp" "$out"
}
