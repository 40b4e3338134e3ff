"""Documents as text with their structure: sections with a page and a heading path.

One reader per format: plain text, Markdown, HTML (lxml), PDF (pypdf, one section per page),
DOCX (python-docx, heading styles), HWPX and HWP (hwpforge: its Rust core reads both the XML
HWPX package and the binary HWP5 format, and exports Markdown with the document's headings,
which the Markdown reader then splits). A file that cannot be read raises `UnreadableDocument`
with the reason, so ingest can report it and go on with the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".hwpx", ".hwp")


class UnreadableDocument(Exception):
    """The file could not be turned into text; the message is the reason, for the ingest report."""


@dataclass(slots=True)
class Section:
    text: str
    heading: str = ""                 # "1. 총칙 > 제2조", the path of headings above the text
    page: int | None = None           # 1-based, for paged formats


@dataclass(slots=True)
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)
    pages: int = 1                    # pages for a paged format, else 1

    @property
    def chars(self) -> int:
        return sum(len(s.text) for s in self.sections)


def read_document(path: Path) -> Document:
    """Read one file by its suffix; raise UnreadableDocument with the reason if it cannot be."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableDocument(f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(SUFFIXES)}")
    try:
        doc = reader(path)
    except UnreadableDocument:
        raise
    except Exception as exc:   # each library has its own errors; the reason is what the report needs
        raise UnreadableDocument(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    doc.sections = [s for s in doc.sections if s.text.strip()]
    if not doc.sections:
        raise UnreadableDocument("no text found (a scanned document needs OCR first)")
    return doc


def _text(path: Path) -> Document:
    return Document(path.stem, [Section(_decode(path.read_bytes()))])


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp949"):   # cp949: older Korean Windows files
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableDocument("not UTF-8 or CP949 text")


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_)(.+?)\1")


def markdown_sections(text: str) -> tuple[str, list[Section]]:
    """(first heading, sections split at headings, each with its heading path)."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    title = ""

    def flush() -> None:
        if lines:
            sections.append(Section("\n".join(lines).strip("\n"), " > ".join(h for _l, h in path)))
            lines.clear()

    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else _MD_HEADING.match(line)
        if m is None:
            lines.append(line)
            continue
        flush()
        level, heading = len(m.group(1)), _MD_EMPHASIS.sub(r"\2", m.group(2)).strip()
        title = title or heading
        path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading)]
        lines.append(heading)          # the heading's words are searchable in its own chunk
    flush()
    return title, sections


def _markdown(path: Path) -> Document:
    title, sections = markdown_sections(_decode(path.read_bytes()))
    return Document(title or path.stem, sections)


_BLOCKS = {"p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "caption", "figcaption"}


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)


def _html_text(data: bytes) -> str:
    """The declared charset (euc-kr pages are common), else UTF-8, else CP949; lxml alone
    would read undeclared bytes as Latin-1."""
    declared = _CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii").lower().replace("euc-kr", "cp949"))
        except (LookupError, UnicodeDecodeError):
            pass
    return _decode(data)


def _html(path: Path) -> Document:
    import lxml.html  # type: ignore[import-untyped]

    root = lxml.html.document_fromstring(_html_text(path.read_bytes()))
    for bad in root.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    title = (root.findtext(".//title") or "").strip()
    sections: list[Section] = []
    heads: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        if lines:
            sections.append(Section("\n\n".join(lines), " > ".join(h for _l, h in heads)))
            lines.clear()

    body = root.find("body") if root.find("body") is not None else root
    for el in body.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        if re.fullmatch(r"h[1-6]", tag):
            flush()
            level, heading = int(tag[1]), " ".join(el.text_content().split())
            heads = [(lvl, h) for lvl, h in heads if lvl < level] + [(level, heading)]
            title = title or heading
            lines.append(heading)
        elif tag in _BLOCKS and not any(a.tag in _BLOCKS for a in el.iterancestors()):
            text = " ".join(el.text_content().split())
            if text:
                lines.append(text)
    flush()
    return Document(title or path.stem, sections)


def _pdf(path: Path) -> Document:
    from pypdf import PdfReader

    reader = PdfReader(path)
    if reader.is_encrypted:
        raise UnreadableDocument("the PDF is encrypted")
    # NUL characters: some CID fonts' ToUnicode maps yield one between every character
    sections = [Section((page.extract_text() or "").replace("\x00", ""), page=i) for i, page in enumerate(reader.pages, 1)]
    meta = reader.metadata
    title = str(meta.title) if meta is not None and meta.title else path.stem
    return Document(title, sections, pages=len(reader.pages))


def _docx(path: Path) -> Document:
    import docx

    document = docx.Document(str(path))
    sections: list[Section] = []
    heads: list[tuple[int, str]] = []
    lines: list[str] = []
    title = document.core_properties.title or ""

    def flush() -> None:
        if lines:
            sections.append(Section("\n\n".join(lines), " > ".join(h for _l, h in heads)))
            lines.clear()

    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = para.style.name if para.style is not None else ""
        level = 0 if style == "Title" else int(m.group(1)) if (m := re.match(r"Heading (\d)", style)) else None
        if level is None:
            lines.append(text)
            continue
        flush()
        heads = [(lvl, h) for lvl, h in heads if lvl < level] + [(level, text)]
        title = title or text
        lines.append(text)
    flush()
    for table in document.tables:          # tables after the text: one line per row
        rows = [" | ".join(c.text.strip() for c in row.cells) for row in table.rows]
        if any(r.strip(" |") for r in rows):
            sections.append(Section("\n".join(rows), "표"))
    return Document(title or path.stem, sections)


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def _hwpforge_markdown(path: Path) -> Document:
    import hwpforge

    if path.suffix.lower() == ".hwp":
        document = hwpforge.convert_hwp5(path.read_bytes(), carry_layout_cache=False).document
    else:
        document = hwpforge.Document.open(path)
    # "styled" keeps headings as Markdown headings (lossy flattens them); its front matter goes
    title, sections = markdown_sections(_FRONT_MATTER.sub("", document.to_md(mode="styled").text, count=1))
    return Document(title or path.stem, sections)


_READERS: dict[str, Callable[[Path], Document]] = {
    ".txt": _text, ".md": _markdown, ".markdown": _markdown, ".html": _html, ".htm": _html,
    ".pdf": _pdf, ".docx": _docx, ".hwpx": _hwpforge_markdown, ".hwp": _hwpforge_markdown,
}
