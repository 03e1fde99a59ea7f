#!/usr/bin/env bash
# Re-fetch the Leaflet build that the dashboard ships (src/voltlib/web/static/vendor/leaflet/):
# `make vendor-leaflet`. Needs npm; tests and installs never run this (the files are committed).
set -euo pipefail
VERSION="${LEAFLET_VERSION:-1.9.4}"
DEST="$(cd "$(dirname "$0")/.." && pwd)/src/voltlib/web/static/vendor/leaflet"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "leaflet@$VERSION" >/dev/null && tar xzf "leaflet-$VERSION.tgz")
rm -rf "$DEST" && mkdir -p "$DEST/images"
cp "$WORK/package/dist/leaflet.js" "$WORK/package/dist/leaflet.css" "$WORK/package/LICENSE" "$DEST/"
cp "$WORK/package/dist/images/"*.png "$DEST/images/"
INTEGRITY="$(cd "$WORK" && npm view "leaflet@$VERSION" dist.integrity)"
cat > "$DEST/README.md" <<README
# Leaflet $VERSION (vendored)

The dashboard's map library, shipped inside the voltlib package so that the map needs no CDN and
works offline. These are the unmodified files of the npm package \`leaflet@$VERSION\`
(tarball integrity \`$INTEGRITY\`): \`dist/leaflet.js\` (minified; its source map is left out),
\`dist/leaflet.css\`, \`dist/images/*.png\` and \`LICENSE\` (BSD 2-Clause, © Volodymyr Agafonkin and
CloudMade). Project: https://leafletjs.com/ — source: https://github.com/Leaflet/Leaflet.

Re-fetch or change the version with \`make vendor-leaflet\` (\`LEAFLET_VERSION=x.y.z make vendor-leaflet\`),
which runs \`tools/vendor_leaflet.sh\`.
README
echo "Leaflet $VERSION -> $DEST"
