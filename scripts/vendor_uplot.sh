#!/usr/bin/env bash
# Vendor uPlot for the dashboard (dashboard/static/vendor/uplot-<version>/): the page must render
# without internet, so the charting library ships inside the package instead of coming from a CDN.
#
#   scripts/vendor_uplot.sh           fetch the pinned tarball, check it, write the kept files
#   scripts/vendor_uplot.sh --check   fetch and check it, and fail if the vendored files differ
#
# To move to another version: change VERSION and INTEGRITY (`npm view uplot@X dist.integrity`), run
# this script, point dashboard/static/index.html at the new folder, and run
# tests/integration/test_dashboard.py.
set -euo pipefail

VERSION=1.6.32
# The npm registry's `dist.integrity` of uplot-1.6.32.tgz (base64 SHA-512 of the tarball).
INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
# What the page loads (the browser build and its stylesheet), and the licence.
KEEP=(dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE)

cd "$(dirname "$0")/.."
DEST=dashboard/static/vendor/uplot-$VERSION
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tarball=$(cd "$work" && npm pack --silent "uplot@$VERSION")
got="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
    echo "uplot-$VERSION.tgz: integrity $got, expected $INTEGRITY; nothing changed" >&2
    exit 1
fi
tar -xzf "$work/$tarball" -C "$work"

if [ "${1:-}" = "--check" ]; then
    for name in "${KEEP[@]}"; do
        cmp -s "$work/package/$name" "$DEST/$(basename "$name")" || { echo "$DEST/$(basename "$name") differs from uplot@$VERSION" >&2; exit 1; }
    done
    (cd "$DEST" && sha256sum --quiet -c SHA256SUMS)
    echo "$DEST: uplot@$VERSION, every kept file as published"
    exit 0
fi

rm -rf "$DEST"
mkdir -p "$DEST"
for name in "${KEEP[@]}"; do
    cp "$work/package/$name" "$DEST/"
done
(cd "$DEST" && sha256sum $(printf '%s\n' "${KEEP[@]}" | xargs -n1 basename) > SHA256SUMS)
cat > "$DEST/README.md" <<EOT
# uPlot, vendored

uplot $VERSION from the npm registry (MIT, see LICENSE), written by \`scripts/vendor_uplot.sh\`, which
checks the tarball against its integrity before keeping these files unchanged:

- tarball: uplot-$VERSION.tgz, integrity \`$INTEGRITY\`
- files: $(printf '%s, ' "${KEEP[@]}" | sed 's/, $//') (kept by their base names); their SHA-256 in SHA256SUMS

The dashboard's page loads them from /static/vendor/uplot-$VERSION/ (dashboard/static/index.html).
Do not edit them: change the version in the script and run it again (\`--check\` verifies them
against the registry).
EOT
echo "$DEST: uplot@$VERSION ($(du -sh "$DEST" | cut -f1))"
