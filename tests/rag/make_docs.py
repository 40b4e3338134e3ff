"""Documents of every format Nuri ingests, written by the real libraries that make them.

Each file carries the same marker sentences in a known place (a heading, a page), so a test can
check that the text, the heading path and the page survived reading and chunking.
"""

from __future__ import annotations

from pathlib import Path

CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")

SECTIONS = [
    ("출장 규정", "국내 출장 일비는 하루 2만 원이다. 숙박비는 서울 지역 1박 10만 원을 넘지 않는다."),
    ("보안 지침", "업무용 계정의 비밀번호는 90일마다 바꿔야 한다. 로그인에 5회 연속 실패하면 계정이 잠긴다."),
]


def make_txt(path: Path) -> Path:
    path.write_text("\n\n".join(body for _h, body in SECTIONS), encoding="utf-8")
    return path


def make_md(path: Path) -> Path:
    lines = ["# 사내 규정"]
    for heading, body in SECTIONS:
        lines += ["", f"## {heading}", "", body]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_html(path: Path) -> Path:
    body = "".join(f"<h2>{h}</h2><p>{b}</p>" for h, b in SECTIONS)
    path.write_text(f"<html><head><title>사내 규정</title><script>var x = '비밀번호';</script></head>"
                    f"<body><h1>사내 규정</h1>{body}</body></html>", encoding="utf-8")
    return path


def make_pdf(path: Path) -> Path:
    """One section per page, in Noto Sans CJK (Korean glyphs) by fpdf2."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("사내 규정")
    pdf.add_font("noto", fname=str(CJK_FONT), collection_font_number=1)
    pdf.set_font("noto", size=12)
    for heading, body in SECTIONS:
        pdf.add_page()
        pdf.multi_cell(0, 8, f"{heading}\n{body}")
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("사내 규정", level=1)
    for heading, body in SECTIONS:
        document.add_heading(heading, level=2)
        document.add_paragraph(body)
    document.save(str(path))
    return path


def make_hwpx(path: Path) -> Path:
    """An HWPX package built by hwpforge from Markdown (headings become heading styles)."""
    import hwpforge

    lines = ["# 사내 규정"]
    for heading, body in SECTIONS:
        lines += ["", f"## {heading}", "", body]
    hwpforge.convert_md("\n".join(lines) + "\n").document.save(path)
    return path


MAKERS = {"txt": make_txt, "md": make_md, "html": make_html, "pdf": make_pdf, "docx": make_docx, "hwpx": make_hwpx}
