"""Turn each supported knowledge file format into a Document of titled sections under heading paths."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from chatwright.errors import ConfigError
from chatwright.knowledge.documents import Document, Section


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


# A file's content as it reads: headings and the text blocks between them.
_Block = _Heading | str

_SPACES = re.compile(r"\s+")


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in _PARSERS


def parse_document(path: Path, data: bytes, source: str) -> Document:
    """Parse `data` read from `path`; raises ConfigError naming the file when it cannot be read."""
    parser = _PARSERS[path.suffix.lower()]
    try:
        return parser(path, data, source)
    except ConfigError:
        raise
    except Exception as error:  # each library raises its own kinds; all mean "unreadable file"
        reason = f"cannot parse knowledge file: {type(error).__name__}: {error}"
        raise ConfigError(reason, path=path) from error


def _parse_markdown(path: Path, data: bytes, source: str) -> Document:
    tokens = MarkdownIt("commonmark").enable("table").parse(_decode(path, data))
    return _document(path, source, list(_markdown_blocks(tokens)))


def _markdown_blocks(tokens: list[Token]) -> Iterator[_Block]:
    """Headings and paragraphs in reading order; list items get "- " and table rows stand alone (`_table_row`)."""
    heading_level = 0
    list_item_depth = 0
    row: list[str] | None = None
    header: list[str] = []
    in_header = False
    for token in tokens:
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "heading_close":
            heading_level = 0
        elif token.type == "list_item_open":
            list_item_depth += 1
        elif token.type == "list_item_close":
            list_item_depth -= 1
        elif token.type == "table_open":
            header = []
        elif token.type in ("thead_open", "thead_close"):
            in_header = token.type == "thead_open"
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            if in_header:
                header = row
            elif line := _table_row(header, row):
                yield line
            row = None
        elif token.type == "inline":
            text = _inline_text(token)
            if heading_level:
                yield _Heading(heading_level, text)
            elif row is not None:
                row.append(text)
            elif list_item_depth:
                yield f"- {text}"
            else:
                yield text
        elif token.type in ("fence", "code_block"):
            yield token.content.strip()


def _table_row(header: Sequence[str], cells: Sequence[str]) -> str:
    """A table row as a list item that reads on its own: its first cell, then each other cell after its column's
    heading ("- Second physical card: Standard €6; Plus Free; Premium Free"); "" for an empty row. Every row is
    a sentence to sentence selection, which keeps only the rows that bear on the question, and a row kept
    without the header row would no longer say which column is which. As list items, kept rows stay on lines
    of their own in the prompt."""
    label, *values = cells or [""]
    named = [f"{heading} {value}".strip() for heading, value in zip_longest(header[1:], values, fillvalue="")
             if value]
    text = f"{label}: {'; '.join(named)}" if label and named else label or "; ".join(named)
    return f"- {text}" if text else ""


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child))
    return "".join(parts).strip()


_HTML_DROPPED = ("script", "style", "nav", "noscript", "template", "svg", "head")
_HTML_BLOCKS = ("p", "div", "section", "article", "main", "aside", "header", "footer", "blockquote", "pre",
                "ul", "ol", "dl", "dt", "dd", "br", "hr", "form", "figure", "figcaption")
_HEADING_MARK = "\x00"


def _parse_html(path: Path, data: bytes, source: str) -> Document:
    soup = BeautifulSoup(data, "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_HTML_DROPPED):
        tag.decompose()
    for heading in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        text = _SPACES.sub(" ", heading.get_text(" ")).strip()
        heading.replace_with(NavigableString(f"\n\n{_HEADING_MARK}{heading.name[1]}{text}\n\n"))
    for item in soup.find_all("li"):
        item.insert_before("\n\n- ")
        item.insert_after("\n\n")
    for table in reversed(soup.find_all("table")):  # innermost first: a nested table becomes its cell's text
        header, body = _html_table(table)
        table.replace_with(NavigableString("".join(f"\n\n{_table_row(header, row)}\n\n" for row in body)))
    for block in soup.find_all(_HTML_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    blocks: list[_Block] = []
    for raw in re.split(r"\n\s*\n", soup.get_text()):
        text = _SPACES.sub(" ", raw).strip()
        if text.startswith(_HEADING_MARK):
            blocks.append(_Heading(int(text[1]), text[2:].strip()))
        elif text and text != "-":
            blocks.append(text)
    return _document(path, source, blocks, fallback_title=page_title)


@dataclass(frozen=True)
class _GridCell:
    text: str
    is_header: bool


def _span(cell: Tag, attribute: str, limit: int) -> int:
    """A cell's colspan or rowspan as browsers read it: its leading digits, capped at `limit` (the HTML
    standard's maximum); 1 when missing or not a number. A rowspan of 0 means "to the end of the table"."""
    match = re.match(r"\s*(\d+)", str(cell.get(attribute) or ""))
    return min(int(match.group(1)), limit) if match else 1


def _html_table(table: Tag) -> tuple[list[str], list[list[str]]]:
    """A table's column headings and body rows, with every spanned cell repeated into each row and column it
    covers, so each row reads whole. Header rows: those in <thead>, else the leading rows of <th> cells only;
    stacked header rows join per column ("Monthly fee" over "Standard": "Monthly fee Standard")."""
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]  # not a nested table's
    grid: list[dict[int, _GridCell]] = [{} for _ in rows]
    for row_number, tr in enumerate(rows):
        column = 0
        for cell in tr.find_all(["td", "th"], recursive=False):
            while column in grid[row_number]:  # taken by a cell spanning down from a row above
                column += 1
            value = _GridCell(_SPACES.sub(" ", cell.get_text(" ")).strip(), cell.name == "th")
            across = max(_span(cell, "colspan", 1000), 1)
            down = _span(cell, "rowspan", 65534) or len(rows) - row_number
            for below in grid[row_number:row_number + down]:
                below.update((column + offset, value) for offset in range(across))
            column += across
    width = max((max(line, default=-1) + 1 for line in grid), default=0)
    texts = [[line[column].text if column in line else "" for column in range(width)] for line in grid]
    in_head = [tr.find_parent("thead") is not None for tr in rows]
    header_rows = sum(in_head) if any(in_head) else next(
        (number for number, line in enumerate(grid) if not line or not all(c.is_header for c in line.values())),
        len(grid))
    if header_rows == len(grid):  # headings only: read them as rows rather than lose them
        header_rows = 0
    header = [" ".join(dict.fromkeys(row[column] for row in texts[:header_rows] if row[column]))
              for column in range(width)]
    return header, texts[header_rows:]


def _parse_text(path: Path, data: bytes, source: str) -> Document:
    return _document(path, source, [_decode(path, data)])


def _parse_pdf(path: Path, data: bytes, source: str) -> Document:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except PyPdfError as error:
        raise ConfigError(f"not a readable PDF: {error}", path=path) from error
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = metadata_title.strip()
    if not title or title.lower() in ("untitled", "anonymous"):
        title = first_line[:120]
    return _document(path, source, [text], fallback_title=title)


def _parse_faq_csv(path: Path, data: bytes, source: str) -> Document:
    """One section per row, headed by its question, so each answer is retrieved and cited on its own."""
    reader = csv.DictReader(io.StringIO(_decode(path, data)))
    columns = {name.strip().lower(): name for name in reader.fieldnames or [] if name}
    missing = [name for name in ("question", "answer") if name not in columns]
    if missing:
        raise ConfigError(f"FAQ CSV needs the columns question and answer; missing: {', '.join(missing)}",
                          path=path)
    sections: list[Section] = []
    try:
        for row in reader:
            question = _SPACES.sub(" ", row.get(columns["question"]) or "").strip()
            answer = (row.get(columns["answer"]) or "").strip()
            if question and answer:
                sections.append(Section(heading_path=(question,), text=f"Q: {question}\nA: {answer}"))
    except csv.Error as error:
        raise ConfigError(f"invalid CSV at line {reader.line_num}: {error}", path=path) from error
    return Document(source=source, title=_title_from_stem(path), sections=sections)


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"not UTF-8 text (byte {error.start})", path=path) from error


def _document(path: Path, source: str, blocks: Iterable[_Block], fallback_title: str = "") -> Document:
    """Group blocks under their heading path; title: the first H1, else `fallback_title`, else the name."""
    sections: list[Section] = []
    path_by_level: dict[int, str] = {}
    texts: list[str] = []
    first_h1 = ""

    def close_section() -> None:
        text = "\n\n".join(texts).strip()
        if text:
            heading_path = tuple(path_by_level[level] for level in sorted(path_by_level))
            sections.append(Section(heading_path=heading_path, text=text))
        texts.clear()

    for block in blocks:
        if isinstance(block, _Heading):
            close_section()
            first_h1 = first_h1 or (block.text if block.level == 1 else "")
            path_by_level = {level: text for level, text in path_by_level.items() if level < block.level}
            path_by_level[block.level] = block.text
        else:
            texts.append(block)
    close_section()
    title = first_h1 or fallback_title or _title_from_stem(path)
    return Document(source=source, title=title, sections=sections)


def _title_from_stem(path: Path) -> str:
    words = _SPACES.sub(" ", re.sub(r"[-_.]+", " ", path.stem)).strip()
    return words[:1].upper() + words[1:]


_PARSERS: dict[str, Callable[[Path, bytes, str], Document]] = {
    ".md": _parse_markdown,
    ".markdown": _parse_markdown,
    ".html": _parse_html,
    ".htm": _parse_html,
    ".txt": _parse_text,
    ".pdf": _parse_pdf,
    ".csv": _parse_faq_csv,
}
