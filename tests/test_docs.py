"""The docs' generated blocks and the README's links: each block the commands write lives in one docs page, between
the markers its writer looks for, and every relative link of the README names a file that exists. (The docs site
itself, its links, anchors and API pages, is checked by ``mkdocs build --strict`` in .ci/run.)"""

from __future__ import annotations

import re

import pytest

from vae_hub.evaluation import report as evaluation_report
from vae_hub.sweep import report as sweep_report

from .conftest import ROOT, bench_module

README = ROOT / "README.md"


def _markers():
    bench = bench_module("report")
    return [("docs/evaluation.md", evaluation_report.MARK_START, evaluation_report.MARK_END),
            ("docs/sweep.md", sweep_report.README_START, sweep_report.README_END),
            ("docs/performance.md", bench.MARK_START, bench.MARK_END)]


@pytest.mark.parametrize("page,start,end", _markers())
def test_each_generated_block_lives_in_its_docs_page(page, start, end):
    text = (ROOT / page).read_text()
    assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index(end), page
    others = [p for p in [README, *(ROOT / "docs").rglob("*.md")] if p != ROOT / page]
    assert not [p for p in others if start in p.read_text()], f"{start} is written into {page} only"


def test_readme_links_name_files_that_exist():
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img src="([^"]+)"', text)
    relative = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link)]
    assert relative, "the README links the docs"
    assert not [link for link in relative if not (ROOT / link).exists()]
