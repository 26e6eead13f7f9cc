#!/usr/bin/env bash
# Vendor Swagger UI for the serving app's /docs (serving/static/swagger-ui/): the page must render
# without internet, so the assets ship inside the package instead of coming from a CDN.
#
#   scripts/vendor_swagger_ui.sh           fetch the pinned tarball, check it, write the kept files
#   scripts/vendor_swagger_ui.sh --check   fetch and check it, and fail if the vendored files differ
#
# To move to another version: change VERSION and INTEGRITY (`npm view swagger-ui-dist@X dist.integrity`),
# run this script, review the diff and run tests/unit/test_docs_page.py and tests/integration/test_docs_browser.py.
set -euo pipefail

VERSION=5.35.0
# The npm registry's `dist.integrity` of swagger-ui-dist-5.35.0.tgz (base64 SHA-512 of the tarball).
INTEGRITY=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
# What FastAPI's Swagger UI page loads (the bundle includes the standalone preset), and the licences.
KEEP=(swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)

cd "$(dirname "$0")/.."
DEST=serving/static/swagger-ui
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tarball=$(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION")
got="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
    echo "swagger-ui-dist-$VERSION.tgz: integrity $got, expected $INTEGRITY; nothing changed" >&2
    exit 1
fi
tar -xzf "$work/$tarball" -C "$work"

if [ "${1:-}" = "--check" ]; then
    for name in "${KEEP[@]}"; do
        cmp -s "$work/package/$name" "$DEST/$name" || { echo "$DEST/$name differs from swagger-ui-dist@$VERSION" >&2; exit 1; }
    done
    (cd "$DEST" && sha256sum --quiet -c SHA256SUMS)
    echo "$DEST: swagger-ui-dist@$VERSION, every kept file as published"
    exit 0
fi

rm -rf "$DEST"
mkdir -p "$DEST"
for name in "${KEEP[@]}"; do
    cp "$work/package/$name" "$DEST/$name"
done
(cd "$DEST" && sha256sum "${KEEP[@]}" > SHA256SUMS)
cat > "$DEST/README.md" <<EOF
# Swagger UI, vendored

swagger-ui-dist $VERSION from the npm registry (Apache-2.0, see LICENSE and NOTICE; the licences of
the libraries inside the bundle are in swagger-ui-bundle.js.LICENSE.txt), written by
\`scripts/vendor_swagger_ui.sh\`, which checks the tarball against its integrity before keeping
these files unchanged:

- tarball: swagger-ui-dist-$VERSION.tgz, integrity \`$INTEGRITY\`
- files: $(printf '%s, ' "${KEEP[@]}" | sed 's/, $//'); their SHA-256 in SHA256SUMS

The serving app's /docs page loads them from /docs/static/ (serving/docs.py). Do not edit them:
change the version in the script and run it again (\`--check\` verifies them against the registry).
EOF
echo "$DEST: swagger-ui-dist@$VERSION ($(du -sh "$DEST" | cut -f1))"
