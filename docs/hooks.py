"""MkDocs hooks: the repository's figures in the site, without copies in docs/.

Some pages show figures that live beside what made them: a sweep's plots (``sweeps/results/``), a benchmark's
figure (``bench/results/``), the bundled models' figures (``pretrained/<variant>/figures/``). ``on_files`` adds
those images to the site under their repository paths, so a page may link one either relative to the repository
root (``sweeps/results/x.png``, as the generated blocks were written for the top-level README) or relative to the
page's own file (``../sweeps/results/x.png``, as ``--update-readme docs/sweep.md`` writes it, and as GitHub shows
it); ``on_page_markdown`` turns the second form into the first. Any other link is checked by ``--strict`` as usual.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
MOUNTED = ("sweeps/results", "bench/results", "pretrained")
IMAGES = {".png", ".svg", ".gif", ".jpg", ".jpeg", ".webp"}
LINK = re.compile(r"(\]\()((?:\.\./)+(?:" + "|".join(map(re.escape, MOUNTED)) + r")/[^)\s]*)")


def on_files(files, config):
    for top in MOUNTED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix.lower() in IMAGES and path.is_file():
                rel = path.relative_to(ROOT).as_posix()
                if files.get_file_from_path(rel) is None:
                    files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    here = posixpath.dirname(page.file.src_uri)  # the page's folder inside docs/

    def mounted(m: re.Match) -> str:
        # the target as a repository path (the page is docs/<here>/...): docs/ is one level below the root
        target = posixpath.normpath(posixpath.join("docs", here, m.group(2)))
        if target.startswith("../") or files.get_file_from_path(target) is None:
            return m.group(0)  # not a mounted figure: leave it to the link check
        return m.group(1) + posixpath.relpath(target, here or ".")

    return LINK.sub(mounted, markdown)
