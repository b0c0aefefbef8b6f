"""The runbook pages: /runbook/ renders docs/two-sites.md, /runbook/<name>/ any other
docs/<name>.md, inside the portal's layout (issue 14).

Read-only and safe: markdown-it-py's CommonMark preset with raw HTML off, so a ``<script>``
in a document is shown as text, never run; headings get ids (``#taking-over``) so the
banner, /site/ and the documents can link to a section.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext as _
from markdown_it import MarkdownIt
from markdown_it.token import Token

DOCS_DIR = Path(settings.BASE_DIR) / "docs"
DEFAULT = "two-sites"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def render_markdown(text: str) -> tuple[str, str, list[tuple[int, str, str]]]:
    """(html, title, headings): the document as safe HTML, its first heading, and each
    level 2-3 heading as (level, id, text) for the table of contents."""
    md = MarkdownIt("commonmark", {"html": False})
    tokens = md.parse(text)
    title, headings, seen = "", [], set()
    for opening, inline in pairwise(tokens):
        if opening.type != "heading_open" or inline.type != "inline":
            continue
        words = "".join(child.content for child in inline.children or [] if _is_text(child))
        slug, n = _slug(words), 1
        while slug in seen:
            n += 1
            slug = f"{_slug(words)}-{n}"
        seen.add(slug)
        opening.attrSet("id", slug)
        level = int(opening.tag[1])
        if level == 1 and not title:
            title = words
        elif level in (2, 3):
            headings.append((level, slug, words))
    return md.renderer.render(tokens, md.options, {}), title, headings


def _is_text(token: Token) -> bool:
    return token.type in ("text", "code_inline")


def documents() -> list[str]:
    """The names of docs/*.md, the default first."""
    names = sorted(p.stem for p in DOCS_DIR.glob("*.md") if _NAME.fullmatch(p.stem))
    return sorted(names, key=lambda name: name != DEFAULT)


def runbook_page(request, name: str = DEFAULT):
    if not _NAME.fullmatch(name) or not (path := DOCS_DIR / f"{name}.md").is_file():
        raise Http404(_("No such document in the runbook: %(name)s") % {"name": name})
    html, title, headings = render_markdown(path.read_text(encoding="utf-8"))
    return render(
        request,
        "drportal/runbook.html",
        {
            "body": html,
            "title": title or name,
            "headings": headings,
            "name": name,
            "documents": documents(),
            "source": f"docs/{name}.md",
        },
    )
