"""Each knowledge format parses into titled sections under the right headings, from real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatwright.errors import ConfigError
from chatwright.knowledge.documents import Document
from chatwright.knowledge.parsers import is_supported, parse_document
from knowledge_samples import CARDS_HTML, FAQ_CSV, FEES_MD, PRODUCTS_PDF_LINES, TRANSFERS_TXT, write_pdf


def _parse(path: Path) -> Document:
    return parse_document(path, path.read_bytes(), path.name)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_markdown_sections_follow_nested_headings(tmp_path: Path) -> None:
    document = _parse(_write(tmp_path / "fees.md", FEES_MD))

    assert document.title == "Fees and charges"
    assert [section.heading_path for section in document.sections] == [
        ("Fees and charges",),
        ("Fees and charges", "Account maintenance"),
        ("Fees and charges", "Overdraft"),
        ("Fees and charges", "Cash withdrawals abroad"),
    ]
    overdraft = document.sections[2].text
    assert "9.9% per year" in overdraft and "#" not in overdraft
    assert "arranged overdraft in the app" in overdraft  # wrapped lines joined into one paragraph


def test_markdown_keeps_text_of_lists_code_tables_and_drops_markup(tmp_path: Path) -> None:
    text = """Intro before any heading with **bold** and a [link](https://example.com).

## Steps
### Deep
1. First step
2. Second step

```
code sample
```

## Table
| Plan | Price |
|------|-------|
| Basic | 1 EUR |
"""
    document = _parse(_write(tmp_path / "my_guide-v2.md", text))

    assert document.title == "My guide v2"  # no H1: the file name, prettified
    intro, steps, table = document.sections
    assert intro.heading_path == () and intro.text == "Intro before any heading with bold and a link."
    assert steps.heading_path == ("Steps", "Deep")
    assert steps.text == "- First step\n\n- Second step\n\ncode sample"
    assert table.heading_path == ("Table",) and table.text == "- Basic: Price 1 EUR"


def test_every_table_row_names_its_columns_so_it_reads_without_the_header_row(tmp_path: Path) -> None:
    """Sentence selection keeps only some rows; "€6 | Free | Free" alone would not say which plan pays what."""
    markdown = """# Card fees

| | Standard | Premium |
|---|---|---|
| Second card | €6 | Free |
| Virtual cards | Free (1) | |
"""
    html = """<html><body><h1>Card fees</h1><table>
<tr><th></th><th>Standard</th><th>Premium</th></tr>
<tr><td>Second card</td><td>€6</td><td>Free</td></tr>
<tr><td>Virtual cards</td><td>Free (1)</td><td></td></tr>
</table><p>Prices include VAT.</p></body></html>"""
    headless = "<html><body><table><tr><td>Standard</td><td>€0</td></tr></table></body></html>"

    for path, text in ((tmp_path / "fees.md", markdown), (tmp_path / "fees.html", html)):
        rows = _parse(_write(path, text)).sections[0].text.split("\n\n")
        assert rows[:2] == ["- Second card: Standard €6; Premium Free", "- Virtual cards: Standard Free (1)"], path
    assert _parse(_write(tmp_path / "plain.html", headless)).sections[0].text == "- Standard: €0"


def test_html_table_cells_that_span_rows_or_columns_fill_every_row_and_column_they_cover(tmp_path: Path) -> None:
    """Help-centre tables group columns under one heading and share cells across plans; each row must still
    name its own value for every column, and a table nested in a cell must not be read twice."""
    html = """<html><body><h1>Fees</h1><table>
<thead><tr><th rowspan="2">Fee</th><th colspan="2">Plan</th></tr><tr><th>Standard</th><th>Premium</th></tr></thead>
<tr><th rowspan="2">Cards</th><td>€6</td><td rowspan="2">Free</td></tr>
<tr><td colspan="bad">€1</td></tr>
<tr><td>Cash</td><td colspan="2">2 %</td></tr>
<tr><td>Perks</td><td><table><tr><td>Lounge</td><td>no</td></tr></table></td><td>all</td></tr>
</table><table><tr><th>Only</th><th>headings</th></tr></table></body></html>"""

    rows = _parse(_write(tmp_path / "fees.html", html)).sections[0].text.split("\n\n")

    assert rows == ["- Cards: Plan Standard €6; Plan Premium Free", "- Cards: Plan Standard €1; Plan Premium Free",
                    "- Cash: Plan Standard 2 %; Plan Premium 2 %",
                    "- Perks: Plan Standard - Lounge: no; Plan Premium all", "- Only: headings"]


def test_html_uses_headings_and_drops_scripts_styles_and_navigation(tmp_path: Path) -> None:
    document = _parse(_write(tmp_path / "cards.html", CARDS_HTML))

    assert document.title == "Lost or stolen cards"
    assert [section.heading_path[-1] for section in document.sections] == [
        "Lost or stolen cards", "Blocking your card", "Getting a replacement"]
    all_text = " ".join(section.text for section in document.sections)
    assert "block it immediately so that nobody" in all_text  # inline tags do not split sentences
    for dropped in ("tracking code", "color: red", "Menu"):
        assert dropped not in all_text
    assert document.sections[2].text.startswith("- A new card arrives within 5 working days.")


def test_html_without_h1_takes_its_page_title(tmp_path: Path) -> None:
    html = "<html><head><title>Opening hours</title></head><body><p>We open at nine.</p></body></html>"
    document = _parse(_write(tmp_path / "hours.htm", html))

    assert document.title == "Opening hours"
    assert document.sections[0].text == "We open at nine."


def test_plain_text_is_one_untitled_section_named_after_the_file(tmp_path: Path) -> None:
    document = _parse(_write(tmp_path / "transfers.txt", TRANSFERS_TXT))

    assert document.title == "Transfers"
    assert len(document.sections) == 1 and document.sections[0].heading_path == ()
    assert "International transfers cost 12 EUR" in document.sections[0].text


def test_pdf_text_and_title_from_metadata_or_first_line(tmp_path: Path) -> None:
    write_pdf(tmp_path / "products.pdf", PRODUCTS_PDF_LINES)
    write_pdf(tmp_path / "brochure.pdf", PRODUCTS_PDF_LINES, title="Savings brochure 2025")

    untitled, titled = _parse(tmp_path / "products.pdf"), _parse(tmp_path / "brochure.pdf")

    assert untitled.title == "Northwind savings products"
    assert titled.title == "Savings brochure 2025"
    assert "product code NW-TD-7741" in untitled.sections[0].text


def test_faq_csv_gives_one_section_per_question(tmp_path: Path) -> None:
    document = _parse(_write(tmp_path / "faq.csv", FAQ_CSV))

    assert [section.heading_path for section in document.sections] == [
        ("How do I reset my online banking password?",),
        ("What are your opening hours?",),
        ("How do I change my address?",),
    ]
    assert document.sections[1].text == (
        "Q: What are your opening hours?\nA: Our branches are open Monday to Friday from 9:00 to 17:00.")


def test_faq_csv_without_the_required_columns_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "contacts.csv", "name,phone\nAnna,123\n")

    with pytest.raises(ConfigError, match="question and answer") as raised:
        _parse(path)
    assert raised.value.path == path and "contacts.csv" in str(raised.value)


def test_invalid_utf8_and_corrupt_pdf_are_errors_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\xff\xfe\x00question\x9c\x80,answer\n")
    corrupt = tmp_path / "broken.pdf"
    corrupt.write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")

    for path in (garbage, corrupt):
        with pytest.raises(ConfigError) as raised:
            _parse(path)
        assert raised.value.path == path


def test_only_known_extensions_are_supported() -> None:
    supported = ("a.md", "b.MARKDOWN", "c.htm", "d.html", "e.txt", "f.pdf", "g.csv")
    assert all(is_supported(Path(name)) for name in supported)
    assert not any(is_supported(Path(name)) for name in ("a.docx", "b.png", "Makefile"))
