"""Importers on real slices of the public datasets (and files written in their real layouts)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from chatwright.dialogue.types import Route
from chatwright.errors import ConfigError
from chatwright.nlu.importers import (
    DatasetFormat,
    detect_format,
    import_clinc150,
    import_dataset,
    import_hwu64,
    import_sst2,
    treebank_to_text,
)
from chatwright.nlu.markup import EntitySpan, to_bio
from chatwright.nlu.sentiment_data import Sentiment, load_sentiment_data, write_sentiment_jsonl
from chatwright.nlu.training_data import load_nlu_data, write_entities_yaml, write_intents_yaml
from shared_data import SHARED_DATA

DATA = SHARED_DATA
SNIPS_TEST = DATA / "snips" / "test"


def head(source: Path, target: Path, lines: int) -> Path:
    with source.open(encoding="utf-8", newline="") as handle:
        target.write_text("".join(handle.readline() for _ in range(lines)), encoding="utf-8", newline="")
    return target


def test_banking77_slice(tmp_path: Path) -> None:
    path = head(DATA / "banking77" / "train.csv", tmp_path / "train.csv", 201)
    assert detect_format(path) is DatasetFormat.BANKING77
    data = import_dataset(path)
    expected = [row["category"] for row in csv.DictReader(path.open(encoding="utf-8", newline=""))]
    assert [e.intent for e in data.examples()] == expected
    assert len(expected) == 200
    assert set(data.labels) <= set(json.loads((DATA / "banking77" / "categories.json").read_text()))
    first = data.examples()[0]
    assert (first.text, first.line) == ("I am still waiting on my card?", 2)


def test_snips_test_folder_keeps_intents_and_entities_round_trip_to_bio() -> None:
    assert detect_format(SNIPS_TEST) is DatasetFormat.BIO
    data = import_dataset(SNIPS_TEST)
    labels = (SNIPS_TEST / "label").read_text(encoding="utf-8").split()
    tag_lines = (SNIPS_TEST / "seq.out").read_text(encoding="utf-8").splitlines()
    examples = data.examples()
    assert len(examples) == len(labels) == 700
    assert set(data.labels) == set(labels) and len(data.labels) == 7
    for example in examples:
        assert example.line is not None
        assert example.intent == labels[example.line - 1]
        assert to_bio(example.text, example.entities)[1] == tag_lines[example.line - 1].split()
    first = next(e for e in examples if e.line == 1)
    assert first.markup == "add [sabrina salerno](artist) to the [grime instrumentals](playlist) playlist"
    assert {"artist", "playlist", "party_size_number"} <= set(data.slots)


def copy_snips(tmp_path: Path) -> Path:
    folder = tmp_path / "bio"
    shutil.copytree(SNIPS_TEST, folder)
    return folder


def test_bio_label_file_with_a_missing_line_names_file_and_line(tmp_path: Path) -> None:
    folder = copy_snips(tmp_path)
    labels = (folder / "label").read_text(encoding="utf-8").splitlines()
    (folder / "label").write_text("\n".join(labels[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ends after 699 lines but seq\.in has 700") as caught:
        import_dataset(folder)
    assert (caught.value.path, caught.value.line) == (folder / "label", 700)


def test_bio_label_file_with_an_extra_line_names_file_and_line(tmp_path: Path) -> None:
    folder = copy_snips(tmp_path)
    with (folder / "label").open("a", encoding="utf-8") as handle:
        handle.write("GetWeather\n")
    with pytest.raises(ConfigError, match="extra line") as caught:
        import_dataset(folder, "bio")
    assert (caught.value.path, caught.value.line) == (folder / "label", 701)


def test_bio_tag_count_mismatch_names_seq_out_line(tmp_path: Path) -> None:
    folder = copy_snips(tmp_path)
    tags = (folder / "seq.out").read_text(encoding="utf-8").splitlines()
    tags[2] = tags[2] + " O"
    (folder / "seq.out").write_text("\n".join(tags) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="14 tags for the 13 tokens") as caught:
        import_dataset(folder)
    assert str(caught.value).startswith(f"{folder / 'seq.out'}:3: ")


def test_sst2_dev_and_sentiment_file_round_trip(tmp_path: Path) -> None:
    path = DATA / "sst2" / "dev.tsv"
    assert detect_format(path) is DatasetFormat.SST2
    examples = import_sst2(path)
    raw = path.read_text(encoding="utf-8").splitlines()
    assert len(examples) == len(raw) == 872
    assert examples[0].label is Sentiment.NEGATIVE and examples[0].text == "one long string of cliches ."
    # Treebank tokens come back as written text
    assert examples[13].text.endswith("rap-metal can't disguise the fact that , really , we've been here , done that .")
    assert examples[52].text == "i don't think i laughed out loud once ."
    assert examples[63].text.startswith("while ( hill ) has learned new tricks")
    positives = sum(line.startswith("1\t") for line in raw)
    assert sum(e.label is Sentiment.POSITIVE for e in examples) == positives
    write_sentiment_jsonl(examples, tmp_path / "sentiment.jsonl")
    again = load_sentiment_data(tmp_path / "sentiment.jsonl")
    assert [(e.text, e.label) for e in again] == [(e.text, e.label) for e in examples]
    with pytest.raises(ConfigError, match="SST-2 holds sentiment labels"):
        import_dataset(path)


def test_treebank_tokens_become_written_text() -> None:
    assert treebank_to_text("it 's not that it wo n't -LRB- or ca n't -RRB- , you 'd say") == (
        "it's not that it won't ( or can't ) , you'd say")
    # a quote opening a word and a lone apostrophe are not clitics
    assert treebank_to_text("the 'sixties ' feel") == "the 'sixties ' feel"


def test_sst2_bad_label_and_sentiment_csv_errors_name_the_line(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    tsv.write_text("1\tgood .\n2\tbad .\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="label 0 or 1") as caught:
        import_sst2(tsv)
    assert caught.value.line == 2
    sentiment_csv = tmp_path / "sentiment.csv"
    sentiment_csv.write_text('text,label\n"fine, thanks",neutral\nawful,angry\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown sentiment label 'angry'") as caught:
        load_sentiment_data(sentiment_csv)
    assert caught.value.line == 3


def write_clinc150(path: Path) -> Path:
    document = {
        "train": [["what is the exchange rate for euros", "exchange_rate"], ["set a timer", "timer"]],
        "val": [["how many dollars is a euro", "exchange_rate"]],
        "test": [["start a ten minute timer", "timer"]],
        "oos_train": [["how old is the eiffel tower", "oos"]],
        "oos_val": [["what is my horoscope", "oos"]],
        "oos_test": [["who won the match", "oos"]],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_clinc150_maps_oos_to_out_of_scope(tmp_path: Path) -> None:
    path = write_clinc150(tmp_path / "data_full.json")
    assert detect_format(path) is DatasetFormat.CLINC150
    data = import_dataset(path)
    assert data.labels == ["exchange_rate", "out_of_scope", "timer"]
    assert data.intents["out_of_scope"].route is Route.OUT_OF_SCOPE
    assert len(data.intents["out_of_scope"].examples) == 3
    assert data.intents["timer"].route is Route.KNOWLEDGE
    assert [e.text for e in import_clinc150(path, parts=("train",)).examples()] == [
        "what is the exchange rate for euros",
        "set a timer",
    ]


def test_clinc150_bad_entry_names_list_and_index(tmp_path: Path) -> None:
    path = tmp_path / "data_full.json"
    document = json.loads(write_clinc150(path).read_text())
    document["val"].append(["no label"])
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"val\[1\]: expected \[text, label\]"):
        import_clinc150(path)


HWU64_HEADER = (
    "userid;answerid;scenario;intent;status;answer_annotation;notes;suggested_entities;"
    "answer_normalised;answer;question"
)
HWU64_ROWS = [
    "1;1;alarm;set;;wake me up at [time : five am] this week;;;wake me up at five am this week;"
    "wake me up at 5am this week;What would you say to set an alarm?",
    "2;2;alarm;set;;wake me up at [time : nine am] on [date : friday];;;wake me up at nine am on friday;"
    "wake me up at 9am on friday;What would you say to set an alarm?",
    "3;3;iot;hue_lightoff;IRR_XR;turn off the lights;;;turn off the lights;turn off the lights;Lights?",
    "4;4;iot;hue_lightoff;;turn the lights off in the [house_place : kitchen];;;turn the lights off in the"
    " kitchen;turn the lights off in the kitchen;Lights?",
]


def test_hwu64_full_layout(tmp_path: Path) -> None:
    path = tmp_path / "NLU-Data-Home-Domain-Annotated-All.csv"
    path.write_text("\n".join([HWU64_HEADER, *HWU64_ROWS]) + "\n", encoding="utf-8")
    assert detect_format(path) is DatasetFormat.HWU64
    data = import_dataset(path)
    assert data.labels == ["alarm_set", "iot_hue_lightoff"]
    assert [e.line for e in data.examples()] == [2, 3, 5]  # the IRR row is skipped
    second = data.examples()[1]
    assert second.text == "wake me up at nine am on friday"
    assert second.entities == (EntitySpan(14, 21, "nine am", "time"), EntitySpan(25, 31, "friday", "date"))
    assert sorted(data.slots) == ["date", "house_place", "time"]


def test_hwu64_minimal_layout_and_bad_markup(tmp_path: Path) -> None:
    path = tmp_path / "hwu.csv"
    path.write_text("text;intent\nset an alarm for [time : six];alarm_set\nwake me at [time six];alarm_set\n")
    assert detect_format(path) is DatasetFormat.HWU64
    with pytest.raises(ConfigError, match=r"expected '\[type : value\]'") as caught:
        import_hwu64(path)
    assert (caught.value.path, caught.value.line) == (path, 3)
    path.write_text("text;intent\nset an alarm for [time : six];alarm_set\nwake me at seven;alarm_set\n")
    assert [e.markup for e in import_hwu64(path).examples()] == [
        "set an alarm for [six](time)",
        "wake me at seven",
    ]


def test_generic_csv_with_optional_markup_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "text,intent,entities\n"
        '"top up 20 euros, please",top_up,"top up [20 euros](amount), please"\n'
        "hello,greeting,\n"
        "top up 5 euros,top_up,top up [5 dollars](amount)\n",
        encoding="utf-8",
    )
    assert detect_format(path) is DatasetFormat.CSV
    with pytest.raises(ConfigError, match="reads 'top up 5 dollars', not the text") as caught:
        import_dataset(path)
    assert caught.value.line == 4
    path.write_text(path.read_text().replace("5 dollars", "5 euros"))
    data = import_dataset(path)
    assert data.intents["top_up"].examples[0].entities == (EntitySpan(7, 15, "20 euros", "amount"),)
    assert data.intents["greeting"].examples[0].entities == ()


def test_generic_jsonl_and_its_span_errors(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    records: list[dict[str, Any]] = [
        {
            "text": "block my visa",
            "intent": "block_card",
            "entities": [{"start": 9, "end": 13, "value": "visa", "entity": "card_type"}],
        },
        {"text": "hi there", "intent": "greeting"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    assert detect_format(path) is DatasetFormat.JSONL
    data = import_dataset(path)
    assert data.examples()[0].markup == "block my [visa](card_type)"
    records[1]["entities"] = [{"start": 0, "end": 2, "value": "ho", "entity": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"has value 'ho' but characters 0\.\.2 of the text read 'hi'"
    ) as caught:
        import_dataset(path)
    assert caught.value.line == 2
    path.write_text('{"text": "hi"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="intent: Field required"):
        import_dataset(path)


def test_unknown_format_and_unrecognisable_file(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("utterance,label\nhi,greeting\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot tell the dataset format"):
        import_dataset(path)
    with pytest.raises(ConfigError, match="unknown dataset format 'rasa'"):
        import_dataset(path, "rasa")


def test_imported_data_survives_writing_and_loading_yaml(tmp_path: Path) -> None:
    data = import_dataset(SNIPS_TEST)
    write_intents_yaml(data, tmp_path / "intents.yaml")
    write_entities_yaml(data, tmp_path / "entities.yaml")
    loaded = load_nlu_data(tmp_path / "intents.yaml", tmp_path / "entities.yaml")
    assert loaded.slots == data.slots
    for name, intent in data.intents.items():
        assert [(e.text, e.entities) for e in loaded.intents[name].examples] == [
            (e.text, e.entities) for e in intent.examples
        ]
