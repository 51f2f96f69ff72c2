#!/usr/bin/env bash
# The libraries' unit tests on a CPU without AVX-512: QEMU user mode emulating a Haswell
# (AVX2 and FMA, no AVX-512), so the portable paths that runtime dispatch picks on such
# CPUs run and are checked here too (the AVX-512 ones run in the plain `cargo test`).
# Needs qemu-x86_64 (Debian: qemu-user).
set -euo pipefail
cd "$(dirname "$0")/.."
qemu=$(command -v qemu-x86_64) || { echo "no qemu-x86_64: skipped"; exit 0; }
# Haswell without the features QEMU's TCG cannot emulate (it would warn about each).
cpu=Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm
"$qemu" -cpu "$cpu" /bin/true 2>/dev/null || { echo "qemu cannot emulate $cpu: skipped"; exit 0; }
# The whole workspace's libraries, so that features resolve as in `cargo test --workspace`
# (a narrower selection would rebuild the crates with other features).
binaries=$(cargo test --workspace --lib --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["manifest_path"].rsplit("/", 1)[0], m["executable"])')
status=0
while read -r dir exe; do
    echo "=== $(basename "$exe") on an emulated Haswell (no AVX-512)"
    (cd "$dir" && "$qemu" -cpu "$cpu" "$exe" -q) || status=1
done <<< "$binaries"
exit $status
