# Sourced by the shell tests: expect NAME WANT_RC PATTERN -- COMMAND... runs the command and
# counts a pass when its exit status is WANT_RC and its output matches the extended regex.
pass=0 fail=0
expect() {
    local name="$1" want="$2" pattern="$3"; shift 4
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want), output did not match /$pattern/:"
        sed 's/^/    /' <<<"$out" | head -20
    fi
}
