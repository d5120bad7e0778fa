"""Converters from public NLU dataset formats into NluData (or sentiment examples), with file:line errors.

Each importer keeps the dataset's own labels; only CLINC150's `oos` class is renamed to the out_of_scope
intent so it routes like the assistant's own out-of-scope intent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chatwright.dialogue.types import Route
from chatwright.errors import ConfigError
from chatwright.nlu.data_files import read_csv, read_lines, read_text
from chatwright.nlu.markup import SLOT_NAME, EntitySpan, MarkupError, from_bio, parse_markup
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample
from chatwright.nlu.training_data import Example, NluData, nlu_data_from_examples

log = structlog.get_logger(__name__)

OUT_OF_SCOPE = "out_of_scope"
CLINC150_PARTS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")
HWU64_COLUMNS = ("scenario", "intent", "answer_annotation")
_HWU64_ENTITY = re.compile(r"\[([^\[\]]*)\]")
_SST2_LABELS = {"0": Sentiment.NEGATIVE, "1": Sentiment.POSITIVE}
_TREEBANK_BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}
_TREEBANK_BRACKET = re.compile("|".join(_TREEBANK_BRACKETS), re.IGNORECASE)
_TREEBANK_CLITIC = re.compile(r"(?<=\w) (n't|'(?:s|re|ve|ll|d|m))\b", re.IGNORECASE)
_BIO_FILES = ("seq.in", "seq.out", "label")

MarkupParser = Callable[[str], tuple[str, tuple[EntitySpan, ...]]]


class DatasetFormat(StrEnum):
    BANKING77 = "banking77"
    BIO = "bio"
    CLINC150 = "clinc150"
    HWU64 = "hwu64"
    SST2 = "sst2"
    CSV = "csv"
    JSONL = "jsonl"


def import_dataset(path: Path, format: DatasetFormat | str | None = None) -> NluData:
    """Import an intent dataset, guessing its format from the path when `format` is None.

    SST-2 is sentiment, not intents: use import_sst2 for it.
    """
    fmt = detect_format(path) if format is None else _format(format, path)
    if fmt is DatasetFormat.SST2:
        raise ConfigError("SST-2 holds sentiment labels, not intents; import it as sentiment data", path=path)
    data = _IMPORTERS[fmt](path)
    log.info(
        "dataset imported",
        path=str(path),
        format=fmt.value,
        intents=len(data.intents),
        examples=len(data.examples()),
        slots=len(data.slots),
    )
    return data


def _format(name: DatasetFormat | str, path: Path) -> DatasetFormat:
    try:
        return DatasetFormat(name)
    except ValueError:
        known = ", ".join(fmt.value for fmt in DatasetFormat)
        raise ConfigError(f"unknown dataset format {name!r}; known formats: {known}", path=path) from None


def detect_format(path: Path) -> DatasetFormat:
    """Guess the format from the folder layout, the file extension and the header or first line."""
    if path.is_dir():
        if _bio_folders(path):
            return DatasetFormat.BIO
        raise ConfigError(
            "a dataset folder must hold seq.in, seq.out and label (or subfolders that do)", path=path
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return DatasetFormat.JSONL
    if suffix == ".json":
        return DatasetFormat.CLINC150
    first = next(iter(read_lines(path)), "")
    if suffix == ".tsv" and re.match(r"[01]\t", first):
        return DatasetFormat.SST2
    columns = {name.strip() for name in first.split(";")}
    if set(HWU64_COLUMNS) <= columns or columns == {"text", "intent"}:
        return DatasetFormat.HWU64
    columns = {name.strip() for name in first.split(",")}
    if columns == {"text", "category"}:
        return DatasetFormat.BANKING77
    if {"text", "intent"} <= columns:
        return DatasetFormat.CSV
    raise ConfigError(
        f"cannot tell the dataset format from the first line {first[:80]!r}; name the format "
        f"explicitly ({', '.join(fmt.value for fmt in DatasetFormat)})",
        path=path,
        line=1,
    )


def _text(raw: str, path: Path, line: int, column: str) -> str:
    text = raw.strip()
    if not text:
        raise ConfigError(f"empty {column!r}", path=path, line=line)
    return text


def import_banking77(path: Path) -> NluData:
    """BANKING77 `text,category` CSV."""
    return nlu_data_from_examples(
        Example(
            _text(row["text"], path, line, "text"),
            _text(row["category"], path, line, "category"),
            source=str(path),
            line=line,
        )
        for line, row in read_csv(path, required=("text", "category"))
    )


def import_csv(path: Path) -> NluData:
    """Generic `text,intent` CSV; an optional `entities` column repeats the text in `[value](slot)` markup."""
    examples: list[Example] = []
    for line, row in read_csv(path, required=("text", "intent")):
        text = _text(row["text"], path, line, "text")
        intent = _text(row["intent"], path, line, "intent")
        spans: tuple[EntitySpan, ...] = ()
        if row.get("entities", "").strip():
            marked_text, spans = _parse(parse_markup, row["entities"].strip(), path, line)
            if marked_text != text:
                raise ConfigError(
                    f"the 'entities' markup reads {marked_text!r}, not the text {text!r}",
                    path=path,
                    line=line,
                )
        examples.append(Example(text, intent, spans, str(path), line))
    return nlu_data_from_examples(examples)


class _JsonlEntity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    start: int
    end: int
    entity: str
    value: str | None = None


class _JsonlRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str
    intent: str
    entities: list[_JsonlEntity] = Field(default_factory=list)


def import_jsonl(path: Path) -> NluData:
    """Generic JSONL: `{"text", "intent", "entities": [{"start", "end", "value", "entity"}]}` per line."""
    examples: list[Example] = []
    for line, raw in enumerate(read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = _JsonlRecord.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"{where + ': ' if where else ''}{first['msg']}", path=path, line=line) from exc
        _text(record.text, path, line, "text")  # offsets refer to the text as given, so it is kept unstripped
        spans = tuple(_jsonl_span(record.text, entity, path, line) for entity in record.entities)
        examples.append(
            Example(record.text, _text(record.intent, path, line, "intent"), spans, str(path), line)
        )
    return nlu_data_from_examples(examples)


def _jsonl_span(text: str, entity: _JsonlEntity, path: Path, line: int) -> EntitySpan:
    if not 0 <= entity.start < entity.end <= len(text):
        raise ConfigError(
            f"entity {entity.entity!r} span {entity.start}..{entity.end} is outside the text "
            f"({len(text)} characters)",
            path=path,
            line=line,
        )
    value = text[entity.start : entity.end]
    if entity.value is not None and entity.value != value:
        raise ConfigError(
            f"entity {entity.entity!r} has value {entity.value!r} but characters "
            f"{entity.start}..{entity.end} of the text read {value!r}",
            path=path,
            line=line,
        )
    if not SLOT_NAME.fullmatch(entity.entity):
        raise ConfigError(f"invalid entity name {entity.entity!r}", path=path, line=line)
    return EntitySpan(entity.start, entity.end, value, entity.entity)


def import_bio(path: Path) -> NluData:
    """A folder with `seq.in` (tokens), `seq.out` (BIO tags) and `label` (intent), one utterance per line,
    as SNIPS and ATIS ship them; a folder of such folders (train/valid/test) is imported as one."""
    folders = _bio_folders(path)
    if not folders:
        raise ConfigError("no seq.in, seq.out and label files here or in its subfolders", path=path)
    return nlu_data_from_examples(example for folder in folders for example in _bio_examples(folder))


def _bio_folders(path: Path) -> list[Path]:
    if (path / "seq.in").is_file():
        return [path]
    return sorted(child for child in path.iterdir() if (child / "seq.in").is_file()) if path.is_dir() else []


def _bio_examples(folder: Path) -> list[Example]:
    texts_path, tags_path, labels_path = (folder / name for name in _BIO_FILES)
    texts, tags, labels = read_lines(texts_path), read_lines(tags_path), read_lines(labels_path)
    for other_path, other in ((tags_path, tags), (labels_path, labels)):
        if len(other) < len(texts):
            raise ConfigError(
                f"the file ends after {len(other)} lines but seq.in has {len(texts)}; every line "
                "of seq.in needs one here",
                path=other_path,
                line=len(other) + 1,
            )
        if len(other) > len(texts):
            raise ConfigError(
                f"extra line: seq.in has only {len(texts)} lines", path=other_path, line=len(texts) + 1
            )
    examples: list[Example] = []
    for line, (text, tag_line, label) in enumerate(zip(texts, tags, labels, strict=True), start=1):
        tokens, token_tags = text.split(), tag_line.split()
        if not tokens:
            raise ConfigError("empty utterance", path=texts_path, line=line)
        if len(tokens) != len(token_tags):
            raise ConfigError(
                f"{len(token_tags)} tags for the {len(tokens)} tokens of seq.in line {line}",
                path=tags_path,
                line=line,
            )
        try:
            plain, spans = from_bio(tokens, token_tags)
        except ValueError as exc:
            raise ConfigError(str(exc), path=tags_path, line=line) from exc
        examples.append(
            Example(plain, _text(label, labels_path, line, "label"), spans, str(texts_path), line)
        )
    return examples


def import_clinc150(path: Path, parts: tuple[str, ...] = CLINC150_PARTS) -> NluData:
    """CLINC150 JSON (oos-eval layout): lists of [text, label] under train/val/test/oos_*; `oos` becomes
    the out_of_scope intent. Entries have no line numbers of their own, so errors name the list and index."""
    try:
        document: Any = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    if not isinstance(document, dict):
        raise ConfigError("expected a JSON object with the lists " + ", ".join(CLINC150_PARTS), path=path)
    missing = [part for part in parts if part not in document]
    if missing:
        raise ConfigError(f"missing list(s) {', '.join(missing)}; found {', '.join(document)}", path=path)
    examples: list[Example] = []
    for part in parts:
        if not isinstance(document[part], list):
            raise ConfigError("expected a list of [text, label] pairs", path=path, field=part)
        for index, entry in enumerate(document[part]):
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and all(isinstance(v, str) and v.strip() for v in entry)
            ):
                raise ConfigError(
                    f"expected [text, label], found {entry!r}", path=path, field=f"{part}[{index}]"
                )
            label = OUT_OF_SCOPE if entry[1] == "oos" else entry[1]
            examples.append(Example(entry[0].strip(), label, source=f"{path}#{part}[{index}]"))
    return nlu_data_from_examples(examples, routes={OUT_OF_SCOPE: Route.OUT_OF_SCOPE})


def import_hwu64(path: Path) -> NluData:
    """HWU64 `;`-separated CSV, annotated as `[type : value]`; the intent is `scenario_intent`.

    Rows whose status starts with IRR are skipped, as the dataset's own scripts do. The minimal
    `text;intent` form (text may carry the same markup) is accepted too.
    """
    header = read_lines(path)[:1]
    full = bool(header) and set(HWU64_COLUMNS) <= {name.strip() for name in header[0].split(";")}
    records = read_csv(path, delimiter=";", required=HWU64_COLUMNS if full else ("text", "intent"))
    examples: list[Example] = []
    skipped = 0
    for line, row in records:
        if full and row.get("status", "").strip().startswith("IRR"):
            skipped += 1
            continue
        annotated = (
            (row["answer_annotation"] or row.get("answer_normalised", "") or row.get("answer", ""))
            if full
            else row["text"]
        )
        intent = f"{row['scenario'].strip()}_{row['intent'].strip()}" if full else row["intent"]
        text, spans = _parse(parse_hwu64_markup, _text(annotated, path, line, "text"), path, line)
        examples.append(Example(text, _text(intent, path, line, "intent"), spans, str(path), line))
    if skipped:
        log.info("skipped irrelevant rows", path=str(path), rows=skipped)
    return nlu_data_from_examples(examples)


def parse_hwu64_markup(annotated: str) -> tuple[str, tuple[EntitySpan, ...]]:
    """`wake me up at [time : five am]` -> plain text and spans; raises MarkupError like parse_markup."""
    text = ""
    spans: list[EntitySpan] = []
    position = 0
    for match in _HWU64_ENTITY.finditer(annotated):
        text += _plain_hwu64(annotated, position, match.start())
        slot, colon, value = match.group(1).partition(":")
        slot, value = slot.strip(), value.strip()
        if not colon or not value:
            raise MarkupError(f"expected '[type : value]', found {match.group(0)!r}", match.start() + 1)
        if not SLOT_NAME.fullmatch(slot):
            raise MarkupError(f"invalid entity type {slot!r}", match.start() + 2)
        spans.append(EntitySpan(len(text), len(text) + len(value), value, slot))
        text += value
        position = match.end()
    text += _plain_hwu64(annotated, position, len(annotated))
    return text, tuple(spans)


def _plain_hwu64(annotated: str, start: int, end: int) -> str:
    """Text between entities, which must not hold a stray bracket."""
    piece = annotated[start:end]
    for offset, char in enumerate(piece):
        if char in "[]":
            raise MarkupError(f"unbalanced {char!r}", start + offset + 1)
    return piece


def _parse(parser: MarkupParser, markup: str, path: Path, line: int) -> tuple[str, tuple[EntitySpan, ...]]:
    try:
        return parser(markup)
    except MarkupError as exc:
        raise ConfigError(
            f"{exc.message} in {markup!r} at column {exc.column}", path=path, line=line
        ) from exc


def import_sst2(path: Path) -> list[SentimentExample]:
    """SST-2 sentence split: `label<TAB>sentence`, no header, 0 = negative, 1 = positive.

    Its sentences are Penn Treebank tokens ("it does n't -lrb- quite -rrb- work"); they are joined back into
    text as people write it ("it doesn't (quite) work"), which is what the model will be asked about.
    """
    examples: list[SentimentExample] = []
    for line, raw in enumerate(read_lines(path), start=1):
        label, tab, sentence = raw.partition("\t")
        if not tab or label.strip() not in _SST2_LABELS:
            raise ConfigError(
                f"expected 'label<TAB>sentence' with label 0 or 1, found {raw[:60]!r}", path=path, line=line
            )
        examples.append(
            SentimentExample(
                treebank_to_text(_text(sentence, path, line, "sentence")), _SST2_LABELS[label.strip()], str(path),
                line,
            )
        )
    return examples


def treebank_to_text(tokens: str) -> str:
    """Treebank-tokenised text back to written form: brackets spelt out, clitics ("do n't", "it 's") rejoined.

    Only what changes sub-word tokens matters: "do n't" reads as do-n-'-t, "don't" as don-'-t, the form the
    encoder saw in pre-training and users type. Spaces around punctuation are left, as tokenisers split there.
    """
    text = _TREEBANK_BRACKET.sub(lambda match: _TREEBANK_BRACKETS[match.group(0).lower()], tokens)
    return _TREEBANK_CLITIC.sub(r"\1", text)


_IMPORTERS: dict[DatasetFormat, Callable[[Path], NluData]] = {
    DatasetFormat.BANKING77: import_banking77,
    DatasetFormat.BIO: import_bio,
    DatasetFormat.CLINC150: import_clinc150,
    DatasetFormat.HWU64: import_hwu64,
    DatasetFormat.CSV: import_csv,
    DatasetFormat.JSONL: import_jsonl,
}
