"""A small fictional bank knowledge base in every supported format, written as real files for the tests."""

from __future__ import annotations

from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

FEES_MD = """\
# Fees and charges

Northwind Bank keeps its prices simple. This page lists every fee on personal accounts.

## Account maintenance

The Everyday account costs 4.50 EUR per month. Students and customers under 25 pay nothing.

## Overdraft

If your balance goes below zero, we charge an overdraft interest of 9.9% per year on the negative balance.
An unarranged overdraft also costs a one-off fee of 15 EUR. You can avoid it by setting up an arranged
overdraft in the app.

## Cash withdrawals abroad

Withdrawing cash outside the euro area costs 2% of the amount, at least 3 EUR.
"""

CARDS_HTML = """\
<!doctype html>
<html><head><title>Cards | Northwind Bank</title><style>body { color: red; }</style>
<script>console.log("tracking code")</script></head>
<body>
<nav><a href="/">Home</a> <a href="/cards">Cards</a> Menu</nav>
<h1>Lost or stolen cards</h1>
<p>If your debit card is lost or stolen, <b>block it immediately</b> so that nobody else can use it.</p>
<h2>Blocking your card</h2>
<p>Open the Northwind app, tap Cards and choose Freeze card. The block applies at once to shop, online and
cash machine payments.</p>
<p>You can also call our 24-hour card line on +31 20 555 0100.</p>
<h2>Getting a replacement</h2>
<ul><li>A new card arrives within 5 working days.</li>
<li>The replacement is free of charge once a year.</li></ul>
</body></html>
"""

TRANSFERS_TXT = """\
Sending money from your account.

Transfers within the euro area (SEPA) are free and arrive the next working day. Instant transfers arrive
within ten seconds and cost 0.50 EUR.

To send money to a bank in another country outside the euro area, use an international transfer
(SWIFT). International transfers cost 12 EUR plus the fees of the receiving bank and take two to four
working days.

The daily transfer limit is 10,000 EUR; you can raise it in the app.
"""

FAQ_CSV = """\
question,answer
How do I reset my online banking password?,"Choose 'Forgot password' on the login page.
We send a reset link to your e-mail address, valid for 30 minutes."
What are your opening hours?,Our branches are open Monday to Friday from 9:00 to 17:00.
How do I change my address?,Update your address in the app under Profile > Personal details.
"""

PRODUCTS_PDF_LINES = [
    "Northwind savings products",
    "The Flex Saver account (product code NW-FS-3391) pays a variable rate and allows withdrawals at",
    "any time. The Fixed Term Deposit (product code NW-TD-7741) locks your money for twelve months.",
    "Both are covered by the national deposit guarantee scheme.",
]


def write_pdf(path: Path, lines: list[str], *, title: str | None = None) -> None:
    """A real one-page PDF with a text layer, as an office suite would write it."""
    canvas = Canvas(str(path), pagesize=A4)
    if title is not None:
        canvas.setTitle(title)
    text = canvas.beginText(50, 780)
    for line in lines:
        text.textLine(line)
    canvas.drawText(text)
    canvas.showPage()
    canvas.save()


def write_bank_knowledge(directory: Path) -> Path:
    """The five-document bank knowledge base in `directory`, returned for chaining."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fees.md").write_text(FEES_MD, encoding="utf-8")
    (directory / "cards.html").write_text(CARDS_HTML, encoding="utf-8")
    (directory / "transfers.txt").write_text(TRANSFERS_TXT, encoding="utf-8")
    (directory / "faq.csv").write_text(FAQ_CSV, encoding="utf-8")
    write_pdf(directory / "products.pdf", PRODUCTS_PDF_LINES)
    return directory
