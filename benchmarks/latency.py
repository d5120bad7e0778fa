"""`latency`: how fast the served assistant answers, and what serving costs over raw llama-cpp-python.

Starts the real server (`python -m chatwright.cli serve`) on a temporary copy of a project, sends knowledge
questions (each in a new conversation, so no follow-up rewriting) and small talk over SSE, and times them on
the client: time to first token, turn time, decode speed. Then, with the server stopped so the two never share
the CPU, it rebuilds the exact prompts the server sent (chatwright's own retrieval, sentence selection and
`build_answer_messages`), streams them through a plain `llama_cpp.Llama` with the same GGUF, threads, context
size, max_tokens and temperature, and times it the same way. The server's resident memory is polled throughout.

Decode speed is (tokens - 1) / (last token time - first token time), tokens counted by re-tokenising the
streamed answer with the GGUF's own tokenizer, summed over all turns (token-weighted), identically for both.

    .venv/bin/python -m benchmarks.latency --project examples/bank --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import psutil
import yaml
from llama_cpp import Llama
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.common import RESULTS_DIR, Target, free_port, ingest, write_results
from chatwright.generation.answer import answer_system_prompt, build_answer_messages
from chatwright.knowledge.index import KnowledgeIndex
from chatwright.knowledge.sentence_selection import select_for_passages
from chatwright.knowledge.support import SupportChecker
from chatwright.models.packaged import packaged_llm_path
from chatwright.models.registry import available_cpus, load_embedder
from chatwright.project import STATE_DIR, AssistantProject

REPO_ROOT = Path(__file__).resolve().parent.parent
console = Console(stderr=True)

# Questions the bank demo's knowledge answers (each routes to knowledge and passes the support check).
KNOWLEDGE_QUESTIONS = (
    "How much does it cost to top up with a Visa card?",
    "How long does card delivery take?",
    "How do I block my card?",
    "Are SEPA transfers free?",
    "How much does an international SWIFT transfer cost?",
    "Which documents can I use to verify my identity?",
    "How long does identity verification take?",
    "How much can I withdraw from ATMs for free?",
    "What are the monthly fees of the account plans?",
    "I sent money to the wrong person, what can I do?",
)
# Not among the measured questions, so warming up caches nothing but the constant system prompt.
WARM_UP_QUESTION = "What is the contactless limit?"
SMALL_TALK = ("hi", "thanks!", "bye", "hello there", "thank you so much", "goodbye")
SMALL_TALK_ROUTES = {"greeting", "thanks", "goodbye"}

# The citation markers the server appends as one last token event after generation (" [1]" or " [1][3]");
# the model itself cannot emit them as one piece (Qwen's tokenizer splits digits), so they are not decode time.
_TRAILING_MARKERS = re.compile(r"\s*(?:\[\d{1,2}\])+\s*$")
_RSS_POLL_S = 0.1
_BUSY_SHARE = 0.05  # other processes' share of the CPU above which a phase's timings are flagged


@dataclass
class Generation:
    """One streamed answer, timed from the request (server: HTTP POST; raw: create_chat_completion call)."""

    ttft_s: float
    total_s: float
    text: str
    events: int
    tokens: int
    decode_s: float  # last token time - first token time

    @property
    def decode_tok_s(self) -> float | None:
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else None


@dataclass
class ServerTurn:
    message: str
    turn_s: float  # request sent -> done event received
    route: str
    abstained: bool
    error: str | None
    timings_ms: dict[str, float]
    generation: Generation | None  # None for small talk, abstentions and errors

    @property
    def answered_from_knowledge(self) -> bool:
        """Whether the model wrote this reply from passages; a clarifying question also streams, but in one piece,
        without generation, so it says nothing about time to first token."""
        return self.generation is not None and "generate_ms" in self.timings_ms


@dataclass
class RawRun:
    question: str
    generation: Generation


@dataclass
class RssMonitor:
    """Polls the resident set of a process and its children in a background thread."""

    pid: int
    peak_bytes: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def current_bytes(self) -> int:
        try:
            process = psutil.Process(self.pid)
            members = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for member in members:
            with suppress(psutil.NoSuchProcess):
                total += member.memory_info().rss
        return total

    def high_water_bytes(self) -> int:
        """The kernel's own peak (VmHWM) of the main process, which catches spikes between polls."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.current_bytes())
            self.samples += 1
            self._stop.wait(_RSS_POLL_S)

    def __enter__(self) -> RssMonitor:
        self._thread = threading.Thread(target=self._poll, name="rss-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class CpuWatch:
    """CPU time spent by processes other than `pids` since creation, as a share of all cores: other work on
    the machine makes the timings meaningless, so each phase reports it."""

    pids: tuple[int, ...]
    _start: tuple[float, float] = (0.0, 0.0)
    _started: float = 0.0

    def __post_init__(self) -> None:
        self._start, self._started = self._sample(), time.monotonic()

    def _sample(self) -> tuple[float, float]:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
        ours = 0.0
        for pid in self.pids:
            with suppress(psutil.NoSuchProcess):
                own = psutil.Process(pid).cpu_times()
                ours += own.user + own.system
        return busy, ours

    def other_share(self) -> float:
        busy, ours = self._sample()
        wall = time.monotonic() - self._started
        other = (busy - self._start[0]) - (ours - self._start[1])
        return round(max(0.0, other) / (wall * (psutil.cpu_count() or 1)), 3) if wall > 0 else 0.0


class TokenCounter:
    """Counts tokens with the GGUF's own tokenizer (vocabulary only, no weights)."""

    def __init__(self, model_path: Path) -> None:
        self._vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)

    def __call__(self, text: str) -> int:
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------------------------------- project set-up


def prepare_project(source: Path, workdir: Path, threads: int) -> AssistantProject:
    """Copy the project (without its generated state), pin models.threads, ingest the knowledge."""
    target = workdir / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(STATE_DIR))
    config_path = target / "assistant.yaml"
    data = yaml.safe_load(config_path.read_text()) or {}
    models = data.setdefault("models", {}) or {}
    models["threads"] = threads
    data["models"] = models
    config_path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    ingest(target)
    return AssistantProject.load(target)


def gguf_path(project: AssistantProject) -> Path:
    """The local GGUF the server loads; the raw baseline needs the same file."""
    ref = project.config.models.llm
    if not isinstance(ref, str) or ref.startswith("hf:"):
        raise SystemExit("the latency benchmark compares against llama-cpp-python: models.llm must be "
                         "packaged:NAME or a local .gguf path")
    if ref.startswith("packaged:"):
        return packaged_llm_path(ref.removeprefix("packaged:"))
    return project.resolve(ref).resolve()


# ------------------------------------------------------------------------------------------------------ server


@contextmanager
def served(project: AssistantProject, workdir: Path, timeout_s: float = 600) -> Iterator[tuple[str, int]]:
    """Run `python -m chatwright.cli serve` on a free port with a SQLite database; yields (url, pid)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "server.log"
    command = [sys.executable, "-m", "chatwright.cli", "serve", str(project.root), "--host", "127.0.0.1",
               "--port", str(port), "--database-url", f"sqlite:///{workdir / 'latency.db'}"]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"`chatwright serve` exited ({process.returncode}):\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"`chatwright serve` not healthy after {timeout_s}s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_turn(client: httpx.Client, url: str, message: str, count_tokens: TokenCounter) -> ServerTurn:
    """Send `message` in a new conversation over SSE; time every token event on arrival."""
    conversation_id = client.post(f"{url}/api/conversations").raise_for_status().json()["id"]
    times: list[float] = []
    pieces: list[str] = []
    turn: dict[str, Any] | None = None
    turn_s = 0.0
    event = ""
    start = time.perf_counter()
    with client.stream("POST", f"{url}/api/conversations/{conversation_id}/messages", params={"stream": "true"},
                       json={"text": message}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                continue
            if not line.startswith("data:"):
                continue
            arrived = time.perf_counter() - start
            data = json.loads(line.removeprefix("data:").strip())
            if event == "token":
                times.append(arrived)
                pieces.append(data["text"])
            elif event == "done":
                turn = data["turn"]
                turn_s = arrived
            elif event == "error":
                raise RuntimeError(f"the server failed the turn {message!r}: {data.get('detail')}")
    if turn is None:
        raise RuntimeError(f"the stream for {message!r} ended without a done event")
    generated = turn["route"] == "knowledge" and not turn["abstained"] and not turn["error"] and pieces
    generation = None
    if generated:
        # The citation markers appended after generation are not decoded text (they may share the last event).
        text = _TRAILING_MARKERS.sub("", "".join(pieces))
        generation = Generation(ttft_s=times[0], total_s=times[-1], text=text, events=len(pieces),
                                tokens=count_tokens(text), decode_s=times[-1] - times[0])
    return ServerTurn(message=message, turn_s=turn_s, route=turn["route"], abstained=turn["abstained"],
                      error=turn["error"], timings_ms=turn["timings_ms"], generation=generation)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def run_server_phase(project: AssistantProject, workdir: Path, questions: Sequence[str], repeats: int,
                     count_tokens: TokenCounter) -> tuple[list[ServerTurn], list[ServerTurn], dict[str, Any]]:
    knowledge: list[ServerTurn] = []
    small_talk: list[ServerTurn] = []
    started = time.perf_counter()
    with (console.status("starting `chatwright serve` (loading models)...") as status,
          served(project, workdir) as (url, pid)):
        status.stop()
        memory: dict[str, Any] = {"server_start_s": round(time.perf_counter() - started, 1)}
        with RssMonitor(pid) as rss, httpx.Client(timeout=httpx.Timeout(600, connect=10), trust_env=False) as client:
            memory["rss_after_load_mb"] = round(rss.current_bytes() / 2**20, 1)
            with console.status("warming up with one knowledge question..."):
                warm_up = server_turn(client, url, WARM_UP_QUESTION, count_tokens)
            memory["warm_up"] = {"turn_s": round(warm_up.turn_s, 3), "route": warm_up.route,
                                 "abstained": warm_up.abstained, "timings_ms": warm_up.timings_ms}
            cpu = CpuWatch((os.getpid(), pid))
            with progress_bar() as progress:
                task = progress.add_task("server: knowledge turns", total=repeats * len(questions))
                for _ in range(repeats):
                    for question in questions:
                        knowledge.append(server_turn(client, url, question, count_tokens))
                        progress.advance(task)
                task = progress.add_task("server: small talk turns", total=repeats * len(SMALL_TALK))
                for _ in range(repeats):
                    for message in SMALL_TALK:
                        small_talk.append(server_turn(client, url, message, count_tokens))
                        progress.advance(task)
            high_water = rss.high_water_bytes()
            memory["other_cpu_share"] = cpu.other_share()
        memory.update(rss_polled_peak_mb=round(rss.peak_bytes / 2**20, 1), rss_samples=rss.samples,
                      vm_hwm_mb=round(high_water / 2**20, 1),
                      peak_rss_mb=round(max(rss.peak_bytes, high_water) / 2**20, 1))
    return knowledge, small_talk, memory


# ------------------------------------------------------------------------------------------------- raw baseline


def build_prompts(project: AssistantProject, questions: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """The messages the server's pipeline sends for a first-turn question, built with chatwright's own parts."""
    config = project.config
    retrieval = config.retrieval
    embedder = load_embedder(config.models.embedder, root=project.root)
    knowledge = KnowledgeIndex.open(project.index_dir, embedder)
    support = SupportChecker(config.abstention)
    prompts: dict[str, list[dict[str, str]]] = {}
    for question in questions:
        found = knowledge.search(question, top_k=retrieval.top_k, candidates=retrieval.candidates,
                                 rrf_k=retrieval.rrf_k)
        passages = select_for_passages(question, found, embedder, retrieval.max_sentences)
        if not support.check(question, passages).supported:
            console.print(f"[yellow]raw baseline: {question!r} is not supported by the knowledge; skipped[/]")
            continue
        messages = build_answer_messages(answer_system_prompt(config), question, passages, [])
        prompts[question] = [{"role": message.role, "content": message.content} for message in messages]
    return prompts


def raw_generation(llama: Llama, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                   count_tokens: TokenCounter) -> Generation:
    """Stream one answer exactly as LlamaCppLLM requests it, timing each content piece."""
    times: list[float] = []
    pieces: list[str] = []
    start = time.perf_counter()
    chunks = cast(Iterator[dict[str, Any]], llama.create_chat_completion(
        messages=messages, max_tokens=max_tokens, temperature=temperature, stop=[], stream=True))  # type: ignore[arg-type]
    for chunk in chunks:
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            times.append(time.perf_counter() - start)
            pieces.append(piece)
    end = time.perf_counter() - start
    text = "".join(pieces)
    if not times:
        return Generation(ttft_s=end, total_s=end, text="", events=0, tokens=0, decode_s=0.0)
    return Generation(ttft_s=times[0], total_s=times[-1], text=text, events=len(pieces), tokens=count_tokens(text),
                      decode_s=times[-1] - times[0])


def run_raw_phase(project: AssistantProject, model_path: Path, threads: int, questions: Sequence[str], repeats: int,
                  count_tokens: TokenCounter) -> tuple[list[RawRun], float]:
    with console.status("raw baseline: rebuilding the server's prompts..."):
        prompts = build_prompts(project, [WARM_UP_QUESTION, *questions])
    models = project.config.models
    generation = project.config.generation
    with console.status("raw baseline: loading the GGUF with llama-cpp-python..."):
        llama = Llama(model_path=str(model_path), n_ctx=models.context_tokens, n_threads=threads,
                      n_threads_batch=threads, verbose=False)
    runs: list[RawRun] = []
    with console.status("raw baseline: warming up..."):
        if WARM_UP_QUESTION in prompts:
            raw_generation(llama, prompts[WARM_UP_QUESTION], generation.max_answer_tokens, generation.temperature,
                           count_tokens)
    measured = [question for question in questions if question in prompts]
    cpu = CpuWatch((os.getpid(),))
    with progress_bar() as progress:
        task = progress.add_task("raw llama-cpp-python", total=repeats * len(measured))
        for _ in range(repeats):
            for question in measured:
                runs.append(RawRun(question, raw_generation(llama, prompts[question], generation.max_answer_tokens,
                                                            generation.temperature, count_tokens)))
                progress.advance(task)
    return runs, cpu.other_share()


# ------------------------------------------------------------------------------------------------------ report


def decode_rate(generations: Sequence[Generation]) -> float | None:
    """Token-weighted decode speed over all answers with at least two tokens."""
    usable = [g for g in generations if g.tokens > 1 and g.decode_s > 0]
    seconds = sum(g.decode_s for g in usable)
    return sum(g.tokens - 1 for g in usable) / seconds if seconds > 0 else None


def stage_p50(turns: Sequence[ServerTurn], stage: str) -> float | None:
    return rounded(percentile([t.timings_ms[stage] for t in turns if stage in t.timings_ms], 50), 1)


def llm_first_token_ms(turn: ServerTurn) -> float | None:
    """Server-side time from the answer prompt being ready to its first token: first_token_ms minus the stages
    before generation (comparable with the raw baseline's time to first token)."""
    timings = turn.timings_ms
    if "first_token_ms" not in timings:
        return None
    before = sum(timings.get(stage, 0.0) for stage in ("understand_ms", "rewrite_ms", "retrieve_ms", "support_ms"))
    return timings["first_token_ms"] - before


def summarise(knowledge: list[ServerTurn], small_talk: list[ServerTurn], memory: dict[str, Any],
              raw: list[RawRun]) -> tuple[dict[str, Any], dict[str, Any]]:
    answered = [t for t in knowledge if t.answered_from_knowledge]
    server_gens = [t.generation for t in answered if t.generation is not None]
    answered_questions = {t.message for t in answered}
    raw_gens = [r.generation for r in raw if r.question in answered_questions]  # the same questions on both sides
    server_rate, raw_rate = decode_rate(server_gens), decode_rate(raw_gens)
    chat = [t for t in small_talk if t.route in SMALL_TALK_ROUTES]
    llm_first = [v for v in (llm_first_token_ms(t) for t in answered) if v is not None]
    metrics: dict[str, Any] = {
        "knowledge_ttft_p50_s": rounded(percentile([g.ttft_s for g in server_gens], 50)),
        "knowledge_ttft_p95_s": rounded(percentile([g.ttft_s for g in server_gens], 95)),
        "knowledge_turn_p50_s": rounded(percentile([t.turn_s for t in answered], 50)),
        "knowledge_turn_p95_s": rounded(percentile([t.turn_s for t in answered], 95)),
        "smalltalk_turn_p50_ms": rounded(percentile([t.turn_s * 1000 for t in chat], 50), 1),
        "smalltalk_turn_p95_ms": rounded(percentile([t.turn_s * 1000 for t in chat], 95), 1),
        "server_decode_tok_s": rounded(server_rate, 2),
        "raw_decode_tok_s": rounded(raw_rate, 2),
        "decode_ratio": rounded(server_rate / raw_rate if server_rate and raw_rate else None),
        "raw_ttft_p50_s": rounded(percentile([g.ttft_s for g in raw_gens], 50)),
        "server_llm_first_token_p50_s": rounded(percentile([v / 1000 for v in llm_first], 50)),
        "server_peak_rss_mb": memory.get("peak_rss_mb"),
        "server_understand_p50_ms": stage_p50(answered, "understand_ms"),
        "server_retrieve_p50_ms": stage_p50(answered, "retrieve_ms"),
        "server_support_p50_ms": stage_p50(answered, "support_ms"),
        "server_first_token_p50_ms": stage_p50(answered, "first_token_ms"),
        "server_generate_p50_ms": stage_p50(answered, "generate_ms"),
        "answer_tokens_mean": rounded(float(np.mean([g.tokens for g in server_gens])) if server_gens else None, 1),
        "knowledge_turns": len(answered),
        "smalltalk_turns": len(chat),
    }
    raw_text = {r.question: r.generation.text for r in raw}
    same = [raw_text[t.message] == t.generation.text for t in answered
            if t.generation is not None and t.message in raw_text]
    per_question = []
    for question in dict.fromkeys(t.message for t in knowledge):
        turns = [t for t in answered if t.message == question and t.generation is not None]
        gens = [t.generation for t in turns if t.generation is not None]
        raws = [r.generation for r in raw if r.question == question]
        per_question.append({
            "question": question, "answered": len(gens),
            "server_ttft_p50_s": rounded(percentile([g.ttft_s for g in gens], 50)),
            "server_turn_p50_s": rounded(percentile([t.turn_s for t in turns], 50)),
            "raw_ttft_p50_s": rounded(percentile([g.ttft_s for g in raws], 50)),
            "tokens": gens[0].tokens if gens else None, "token_events": gens[0].events if gens else None,
            "server_decode_tok_s": rounded(decode_rate(gens), 2), "raw_decode_tok_s": rounded(decode_rate(raws), 2),
            "answer": gens[0].text if gens else None,
        })
    details = {
        "memory": memory,
        "same_answer_as_raw_share": rounded(sum(same) / len(same)) if same else None,
        "knowledge_not_answered": [{"message": t.message, "route": t.route, "abstained": t.abstained,
                                    "error": t.error, "reply": t.generation.text if t.generation else None}
                                   for t in knowledge if not t.answered_from_knowledge],
        "smalltalk_misrouted": [{"message": t.message, "route": t.route} for t in small_talk
                                if t.route not in SMALL_TALK_ROUTES],
        "per_question": per_question,
        "server_timings_ms": [{"message": t.message, **t.timings_ms} for t in knowledge],
        "raw_runs": [{"question": r.question, **{k: v for k, v in asdict(r.generation).items() if k != "text"}}
                     for r in raw],
    }
    return metrics, details


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, default=REPO_ROOT / "examples" / "bank",
                        help="assistant project (copied to a temporary directory and ingested there)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="times each knowledge question and each small-talk message is sent")
    parser.add_argument("--threads", type=int, default=available_cpus(),
                        help="llama.cpp threads for the server (models.threads) and the raw baseline alike")
    parser.add_argument("--questions", type=int, default=len(KNOWLEDGE_QUESTIONS),
                        help=f"how many of the {len(KNOWLEDGE_QUESTIONS)} knowledge questions to ask")
    parser.add_argument("--out-name", default="latency", help="results/NAME.json and results/NAME.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project, database and logs")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1 or not 1 <= args.questions <= len(KNOWLEDGE_QUESTIONS):
        parser.error(f"--repeats and --threads must be >= 1 and --questions 1..{len(KNOWLEDGE_QUESTIONS)}")
    if args.questions == 1 and args.repeats > 1:
        console.print("[yellow]one question asked repeatedly: llama.cpp reuses the whole cached prompt, so time "
                      "to first token is flattered[/]")
    questions = KNOWLEDGE_QUESTIONS[:args.questions]

    workdir = Path(tempfile.mkdtemp(prefix="chatwright-latency-"))
    try:
        with console.status(f"copying and ingesting {args.project}..."):
            project = prepare_project(args.project.resolve(), workdir, args.threads)
            model_path = gguf_path(project)
            count_tokens = TokenCounter(model_path)
        knowledge, small_talk, memory = run_server_phase(project, workdir, questions, args.repeats, count_tokens)
        raw, raw_other_cpu = run_raw_phase(project, model_path, args.threads, questions, args.repeats, count_tokens)
    finally:
        if args.keep:
            console.print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    metrics, details = summarise(knowledge, small_talk, memory, raw)
    other_cpu = {"server_phase": memory.pop("other_cpu_share", None), "raw_phase": raw_other_cpu}
    details["other_cpu_share"] = other_cpu
    generation = project.config.generation
    details["settings"] = {"project": str(args.project), "threads": args.threads, "repeats": args.repeats,
                           "questions": list(questions), "small_talk": list(SMALL_TALK),
                           "warm_up_question": WARM_UP_QUESTION, "model": str(model_path),
                           "context_tokens": project.config.models.context_tokens,
                           "max_answer_tokens": generation.max_answer_tokens, "temperature": generation.temperature,
                           "cpu_affinity": len(os.sched_getaffinity(0))}
    targets = [Target("decode_ratio", ">=", 0.9), Target("knowledge_ttft_p50_s", "<=", 1.5),
               Target("server_peak_rss_mb", "<=", 1536)]
    notes = (f"{args.repeats} x {len(questions)} knowledge questions (each in a new conversation) and "
             f"{args.repeats} x {len(SMALL_TALK)} small-talk messages through `chatwright serve` over SSE, "
             f"{args.threads} llama.cpp threads; times measured on the client from the POST. The raw baseline "
             "streams the same prompts through llama_cpp.Llama (same GGUF, threads, n_ctx, max_tokens, "
             "temperature) after the server has stopped. Decode tok/s = (tokens - 1) / (last - first token time), "
             "token-weighted over all answers. server_llm_first_token_p50_s is the server's first_token_ms minus "
             "the stages before generation, comparable with raw_ttft_p50_s. Peak RSS: max of 100 ms polls of the "
             "server process tree and its VmHWM. Knowledge questions the server met without generating (a clarifying "
             "question) are listed in details.knowledge_not_answered and left out of the knowledge figures on "
             "both sides.")
    busy = {phase: share for phase, share in other_cpu.items() if share is not None and share > _BUSY_SHARE}
    if busy:
        warning = ("WARNING: other processes used "
                   + ", ".join(f"{share:.0%} of the CPU during the {phase.replace('_', ' ')}"
                               for phase, share in busy.items())
                   + "; these timings are not valid, rerun on an idle machine.")
        console.print(f"[bold red]{warning}[/]")
        notes += "\n\n" + warning
    write_results(args.out_name, metrics, targets, notes=notes, details=details)
    print((RESULTS_DIR / f"{args.out_name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
