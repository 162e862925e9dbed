"""Speculative decoding: pollama with and without drafts, llama-server with and without its own, same run.

    python -m bench.speculative [smollm2 qwen2.5-coder] [--rounds 3] [--drafts 8] [--draft-model]

N-gram drafts (the default): both sides draft from the sequence's own tokens, pollama with
``POLLAMA_DRAFT_TOKENS`` (runner.drafts: the tokens that followed the latest earlier occurrence of the
last three), llama-server with ``--spec-type ngram-simple``, at most ``--drafts`` tokens a step each.

``--draft-model``: a draft model, as a Modelfile's ``DRAFT`` gives one (pollama: ``draft_num_predict``
``--drafts``; llama-server: ``-md`` with ``--spec-draft-n-max``). No smaller model shares SmolLM2's or
Qwen2.5-Coder's vocabulary here, so the model served is each one's F16 copy (tools.test_models.ensure_f16)
and the draft its quantized original: a pair that agrees as a family's large and small models do.

Four servers, 2 threads, one slot; greedy 192-token answers to two prompts: one whose answer repeats its
prompt (a list to copy, where n-gram drafts are right) and a story (where they rarely are). Figures are
each server's own decode tok/s, medians of interleaved rounds; pollama's answers with and without drafts
are compared token for token.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.anchors import llama_server, required_anchor
from bench.versus_llama_server import THREADS, Server, complete, has_amx, llama_server_side, pollama_side
from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tools.test_models import ensure_f16, ensure_model

TOKENS = 192
PROMPTS = {
    "copy": "Copy this list exactly, three times:\n"
    + "apple, banana, cherry, date, elderberry, fig, grape, kiwi\n" * 2,
    "story": "Write a long story about a lighthouse keeper and a storm.\n",
}


async def rates(sides: dict[str, Server], rounds: int) -> tuple[dict[tuple[str, str], list[float]], dict[str, str]]:
    figures: dict[tuple[str, str], list[float]] = {}
    texts: dict[str, str] = {}
    names = list(sides)
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for index in range(rounds + 1):  # the first round warms up
            for name in names[index % len(names) :] + names[: index % len(names)]:
                for kind, prompt in PROMPTS.items():
                    answer = await complete(http, sides[name], prompt, TOKENS)
                    if index:
                        figures.setdefault((name, kind), []).append(answer.decode_rate)
        for name in ("pollama", "pollama + drafts"):
            side = sides[name]
            texts[name] = "".join([await _text(http, side, prompt) for prompt in PROMPTS.values()])
    return figures, texts


async def _text(http: httpx.AsyncClient, side: Server, prompt: str) -> str:
    response = await http.post(side.url + side.path, json={**side.body(prompt, TOKENS), "stream": False})
    response.raise_for_status()
    return str(response.json()["response"])


def bench(key: str, rounds: int, drafts: int, binary: Path, *, draft_model: bool) -> None:
    draft = ensure_model(key) if draft_model else None
    path = ensure_f16(key) if draft_model else ensure_model(key)
    source = f"drafted by {draft.name}" if draft else "n-gram drafts"
    print(f"\n== {path.name}, {source}: {THREADS} threads, one slot, {TOKENS} greedy tokens, {drafts} drafts a step")
    with tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        sides: dict[str, Server] = {}
        for name, drafting in (("pollama", False), ("pollama + drafts", True)):
            settings = {"OLLAMA_NUM_PARALLEL": "1"}
            if drafting and not draft:
                settings["POLLAMA_DRAFT_TOKENS"] = str(drafts)
            server = ServerProcess(root / name.replace(" ", ""), settings).start()
            stack.callback(server.stop)
            if drafting and draft:
                install(server, "bench", path, draft=draft, draft_num_predict=drafts)
            else:
                install(server, "bench", path)
            sides[name] = pollama_side(server)
        common = ["-t", str(THREADS), "-np", "1", "-c", "2048", "--no-webui"] + (["--no-repack"] if has_amx() else [])
        if draft:
            speculative = ["-md", str(draft), "--spec-type", "draft-simple", "--spec-draft-n-max", str(drafts)]
        else:
            speculative = ["--spec-type", "ngram-simple", "--spec-draft-n-max", str(drafts)]
        for name, extra in (("llama-server", []), ("llama-server + drafts", speculative)):
            llama = stack.enter_context(llama_server(binary, path, common + extra, root / f"{len(sides)}.log"))
            sides[name] = llama_server_side(llama.url, llama.pid)
        figures, texts = asyncio.run(rates(sides, rounds))
    print(f"{'':<24} " + " ".join(f"{kind + ' tok/s':>22}" for kind in PROMPTS))
    for name in sides:
        cells = []
        for kind in PROMPTS:
            values = figures[(name, kind)]
            base = statistics.median(figures[(name.removesuffix(" + drafts"), kind)])
            ratio = f"x{statistics.median(values) / base:.2f}" if name.endswith("drafts") else ""
            cells.append(f"{statistics.median(values):8.1f} ({min(values):.0f}-{max(values):.0f}) {ratio:>5}")
        print(f"{name:<24} " + " ".join(f"{cell:>22}" for cell in cells))
    same = texts["pollama"] == texts["pollama + drafts"]
    print(f"pollama's greedy answers with and without drafts: {'identical' if same else 'DIFFERENT'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["smollm2", "qwen2.5-coder"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drafts", type=int, default=8)
    parser.add_argument("--draft-model", action="store_true", help="the F16 model drafted by its quantized original")
    args = parser.parse_args()
    binary = required_anchor("llama-server")
    for key in args.models:
        bench(key, args.rounds, args.drafts, binary, draft_model=args.draft_model)


if __name__ == "__main__":
    main()
