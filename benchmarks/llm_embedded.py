"""Embedded chat model speed: generation tokens/s of ``EmbeddedChatModel.stream`` (and
``astream``) against raw ``llama_cpp.Llama.create_chat_completion(stream=True)`` on the same
loaded GGUF (the bundled SmolLM2-135M-Instruct), same prompt, same ``max_tokens``, temperature 0.

Goal: the LangChain wrapper streams at ≥ 0.95× the raw llama-cpp-python speed.
Each run starts from an empty KV cache (``Llama.reset()``), so every side evaluates the whole
prompt; runs alternate between the sides and the best run of each is compared (on a shared
machine the other runs measure the neighbours: llama.cpp's threads wait for each other at every
operation, so one busy core can cut a run's speed by ten). Medians are printed beside.
"""

import asyncio
import statistics
import time
from collections.abc import Callable

from agents.embedded_model import EmbeddedChatModel
from benchmarks.report import Measure, Report

PROMPT = "Bonjour, pouvez-vous me rappeler les horaires d'ouverture du cabinet le samedi ?"
MAX_TOKENS = 128
REPEATS = 5
GOAL_RATIO = 0.95

Run = Callable[[], int]  # streams one answer, returns the number of chunks with text


def _raw(model: EmbeddedChatModel) -> Run:
    llama = model.llama

    def run() -> int:
        produced = 0
        with model.lock:
            llama.reset()
            for chunk in llama.create_chat_completion(
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                max_tokens=MAX_TOKENS,
                temperature=0.0,
            ):
                if chunk["choices"][0]["delta"].get("content"):
                    produced += 1
        return produced

    return run


def _wrapped(model: EmbeddedChatModel) -> Run:
    def run() -> int:
        with model.lock:
            model.llama.reset()
        return sum(1 for chunk in model.stream(PROMPT) if chunk.content)

    return run


def _wrapped_async(model: EmbeddedChatModel) -> Run:
    async def consume() -> int:
        return sum([1 async for chunk in model.astream(PROMPT) if chunk.content])

    def run() -> int:
        with model.lock:
            model.llama.reset()
        return asyncio.run(consume())

    return run


def _tokens_per_second(run: Run) -> tuple[float, int]:
    start = time.perf_counter()
    produced = run()
    return produced / (time.perf_counter() - start), produced


def run(report: Report, repeats: int = REPEATS, n_threads: int | None = None) -> None:
    settings = {"n_threads": n_threads} if n_threads else {}
    model = EmbeddedChatModel(temperature=0.0, max_tokens=MAX_TOKENS, n_ctx=2048, **settings)
    sides = {"raw": _raw(model), "stream": _wrapped(model), "astream": _wrapped_async(model)}
    for side in sides.values():  # warm-up: load the model, go through every path once
        side()
    speeds: dict[str, list[float]] = {name: [] for name in sides}
    produced: dict[str, set[int]] = {name: set() for name in sides}
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            speed, count = _tokens_per_second(sides[name])
            speeds[name].append(speed)
            produced[name].add(count)
    best = {name: max(values) for name, values in speeds.items()}
    medians = {name: round(statistics.median(values), 1) for name, values in speeds.items()}
    print(f"  medians (tokens/s): {medians}")
    label = f"{model.model_name}, {MAX_TOKENS} tokens, {model.n_threads} threads, best of {repeats}"
    report.add(Measure(f"raw llama-cpp chat stream ({label})", best["raw"], "tokens/s"))
    report.add(Measure("EmbeddedChatModel.stream", best["stream"], "tokens/s"))
    report.add(Measure("EmbeddedChatModel.astream", best["astream"], "tokens/s"))
    for name in ("stream", "astream"):
        ratio = best[name] / best["raw"]
        report.add(
            Measure(
                f"EmbeddedChatModel.{name} / raw",
                ratio,
                "×",
                goal=f"≥ {GOAL_RATIO}×",
                met=ratio >= GOAL_RATIO,
            )
        )
    if len({*produced["raw"], *produced["stream"], *produced["astream"]}) != 1:
        print(f"  note: the sides streamed different numbers of chunks: {produced}")
