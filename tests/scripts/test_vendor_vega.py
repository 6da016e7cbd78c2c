"""scripts/vendor_vega.sh's output, as committed: the vendored Vega builds, their licences and the
offline `dvc plots` template that inlines them (the network fetch itself is not run here)."""

from __future__ import annotations

import re

import pytest
from project_copy import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "vendor_vega.sh"
VENDOR = REPO_ROOT / "plots" / "vendor"
TEMPLATE = REPO_ROOT / "plots" / "html_template.html"
BUILDS = ("vega", "vega-lite", "vega-embed")  # in load order: each needs the one before


def pinned_versions() -> dict[str, str]:
    """{package: version} as the script pins them (VEGA=..., VEGA_LITE=..., VEGA_EMBED=...)."""
    text = SCRIPT.read_text()
    return {
        name: re.search(rf"^{name.upper().replace('-', '_')}=(\S+)$", text, re.M).group(1)
        for name in BUILDS
    }


def test_dvc_config_points_at_the_template() -> None:
    config = (REPO_ROOT / ".dvc" / "config").read_text()
    setting = re.search(r"^\[plots\]\n(?:\s+.*\n)*?\s+html_template = (\S+)$", config, re.M)
    assert setting is not None, config
    # dvc resolves a relative plots.html_template against .dvc/
    assert (REPO_ROOT / ".dvc" / setting.group(1)).resolve() == TEMPLATE


def test_template_inlines_the_vendored_builds_byte_for_byte() -> None:
    template = TEMPLATE.read_text(encoding="utf8")
    positions = []
    for name in BUILDS:
        build = (VENDOR / f"{name}.min.js").read_text(encoding="utf8")
        block = f"<script>\n{build}</script>\n"
        assert template.count(block) == 1, f"{name}.min.js is not inlined as vendored"
        positions.append(template.index(block))
    assert positions == sorted(positions)


def test_template_loads_nothing_and_keeps_dvcs_plot_placeholder() -> None:
    template = TEMPLATE.read_text(encoding="utf8")
    assert "{plot_divs}" in template
    # {scripts} is where dvc_render puts its CDN <script src> tags
    assert "{scripts}" not in template
    assert not re.search(r"<script[^>]*\bsrc\s*=", template, re.I)


@pytest.mark.parametrize("name", BUILDS)
def test_builds_are_the_pinned_versions_with_licences(name: str) -> None:
    build = (VENDOR / f"{name}.min.js").read_text(encoding="utf8")
    version = pinned_versions()[name]
    assert f'"{version}"' in build  # each build carries its version string
    assert f"| `{name}.min.js` |" in (VENDOR / "README.md").read_text()
    assert f"| {version} |" in (VENDOR / "README.md").read_text()
    assert (
        "Redistribution and use in source and binary forms"
        in (VENDOR / f"LICENSE.{name}").read_text()
    )
