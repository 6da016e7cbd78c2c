#!/usr/bin/env bash
# Re-fetch the vendored Vega builds and rebuild the offline HTML template of `dvc plots`.
#
#     scripts/vendor_vega.sh        (from the repository root; needs npm, openssl, tar)
#
# DVC's own page loads vega, vega-lite and vega-embed from a CDN, so offline it is blank.
# This fetches the pinned versions below from the npm registry (`npm pack`), checks each
# tarball against its pinned sha512 integrity, copies the minified browser builds and their
# licences into plots/vendor/, and writes plots/html_template.html with the three builds
# inlined (dvc writes its page wherever `-o` says, so a relative <script src> would break).
# .dvc/config points `plots.html_template` at that template. See plots/vendor/README.md.
#
# To upgrade: change a version, set its integrity to the value `npm view <name>@<version>
# dist.integrity` prints, run this script, look at `dvc plots show` and commit the lot.
# Keep the majors DVC's default page uses (dvc_render/vega.py): vega 5, vega-lite 5,
# vega-embed 6 (vega 6 ships no browser build of this kind).
set -euo pipefail

VEGA=5.33.1
VEGA_INTEGRITY=sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==
VEGA_LITE=5.23.0
VEGA_LITE_INTEGRITY=sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==
VEGA_EMBED=6.29.0
VEGA_EMBED_INTEGRITY=sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==
# The vega package ships no LICENSE file; vega-typings, from the same monorepo (vega/vega)
# and the exact version vega 5.33.1 depends on, carries the monorepo's LICENSE.
VEGA_TYPINGS=1.5.1
VEGA_TYPINGS_INTEGRITY=sha512-40kRoG/jG8+4cd3kT5yw08iTlIGe57F7Go/ileSCtRtgU8RZ7tpPaE6GgYvF/HTPlCKMk9/pOdp62+o5sulhvQ==

VENDOR=plots/vendor
TEMPLATE=plots/html_template.html

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch NAME VERSION INTEGRITY: the package's tarball unpacked into $work/NAME.
fetch() {
    local name=$1 version=$2 integrity=$3 tarball actual
    tarball=$(cd "$work" && npm pack --silent "$name@$version")
    actual="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
    if [[ "$actual" != "$integrity" ]]; then
        echo "vendor_vega.sh: $name@$version: integrity $actual, pinned $integrity" >&2
        exit 1
    fi
    mkdir -p "$work/$name"
    tar -xzf "$work/$tarball" -C "$work/$name" --strip-components=1
}

fetch vega "$VEGA" "$VEGA_INTEGRITY"
fetch vega-lite "$VEGA_LITE" "$VEGA_LITE_INTEGRITY"
fetch vega-embed "$VEGA_EMBED" "$VEGA_EMBED_INTEGRITY"
fetch vega-typings "$VEGA_TYPINGS" "$VEGA_TYPINGS_INTEGRITY"

mkdir -p "$VENDOR"
for name in vega vega-lite vega-embed; do
    cp "$work/$name/build/$name.min.js" "$VENDOR/$name.min.js"
done
cp "$work/vega-typings/LICENSE" "$VENDOR/LICENSE.vega"
cp "$work/vega-lite/LICENSE" "$VENDOR/LICENSE.vega-lite"
cp "$work/vega-embed/LICENSE" "$VENDOR/LICENSE.vega-embed"

# dvc_render fills the template with str.replace on {plot_divs}, {scripts} and
# {refresh_tag}: a build that contained one of them would be corrupted, and a </script>
# inside one would end its inline block early.
for name in vega vega-lite vega-embed; do
    if grep -qiE '\{(plot_divs|scripts|refresh_tag)\}|</script' "$VENDOR/$name.min.js"; then
        echo "vendor_vega.sh: $VENDOR/$name.min.js cannot be inlined as it is" >&2
        exit 1
    fi
done

# inline NAME VERSION: one <script> block holding the build, byte for byte.
inline() {
    printf '    <!-- %s@%s build/%s.min.js (BSD-3-Clause, %s/LICENSE.%s) -->\n' \
        "$1" "$2" "$1" "$VENDOR" "$1"
    printf '    <script>\n'
    cat "$VENDOR/$1.min.js"
    printf '</script>\n'
}

# DVC's default page (dvc_render/html.py) without its scripts placeholder, which is where
# dvc puts the CDN <script src> tags: this page carries the builds itself.
{
    cat <<'HEAD'
<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- Written by scripts/vendor_vega.sh from plots/vendor/ (do not edit by hand): the
         Vega builds inlined, so the page renders offline and wherever dvc writes it. -->
HEAD
    inline vega "$VEGA"
    inline vega-lite "$VEGA_LITE"
    inline vega-embed "$VEGA_EMBED"
    cat <<'TAIL'
    <script>
        // dvc embeds a plot whose files have no rows (one that does not apply to the task:
        // ROC for regression, residuals for classification) as an empty spec, which
        // vega-embed draws as a lone actions button: draw nothing for it instead.
        window.vegaEmbed = (function (embed) {
            function embedUnlessEmpty(target, spec, options) {
                if (spec && typeof spec === "object" && Object.keys(spec).length === 0) {
                    var element = document.querySelector(target);
                    if (element) {
                        element.remove();
                    }
                    return Promise.resolve(null);
                }
                return embed(target, spec, options);
            }
            return Object.assign(embedUnlessEmpty, embed);
        })(window.vegaEmbed);
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
TAIL
} >"$TEMPLATE"

echo "vendored vega@$VEGA vega-lite@$VEGA_LITE vega-embed@$VEGA_EMBED into $VENDOR; wrote $TEMPLATE"
