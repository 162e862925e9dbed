"""``python -m pollama.runner``: load one model and serve requests over stdin/stdout until told to stop."""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import llama_cpp

from pollama.runner import ggml, protocol
from pollama.runner import messages as m
from pollama.runner.draft_model import DraftModel, vocabulary_mismatch
from pollama.runner.engine import Engine, Job
from pollama.runner.logs import BufferLog
from pollama.runner.model import LoadedModel, LoadError, LoadOptions, load
from pollama.runner.pieces import bounded_tokens
from pollama.runner.vision import ImagePiece, Vision, VisionError, pieces_of

# Tests make a runner crash the way a broken kernel does: a comma-separated list of the configurations
# that "crash" (extra-buffers, mmap, flash-attention, always), plus "request" to crash at the first
# request's decode instead of the warm-up decode while loading.
SIMULATED_CRASH = "POLLAMA_TEST_RUNNER_CRASH"


def parse_args(argv: list[str]) -> LoadOptions:
    parser = argparse.ArgumentParser(prog="python -m pollama.runner")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--ctx-size", type=int, required=True, help="context per sequence")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--gpu-layers", type=int, default=-1)
    parser.add_argument("--main-gpu", type=int, default=0)
    parser.add_argument("--tensor-split", default="", help="comma-separated share of layers per GPU index")
    parser.add_argument("--no-mmap", action="store_true")
    parser.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--kv-cache-type", default="f16")
    parser.add_argument("--embedding", action="store_true")
    parser.add_argument("--no-extra-buffers", action="store_true", help="no repacked CPU weight layouts")
    parser.add_argument("--projector", type=Path, help="a vision projector (mmproj) GGUF")
    parser.add_argument(
        "--adapter", type=Path, action="append", default=[], help="a LoRA adapter GGUF (repeatable), at scale 1.0"
    )
    parser.add_argument("--rpc", default="", help="comma-separated ggml-rpc-server endpoints (host:port)")
    parser.add_argument("--draft-tokens", type=int, default=0, help="draft tokens a step (0: no drafts)")
    parser.add_argument("--draft-model", type=Path, help="a GGUF that drafts them (else n-gram drafts)")
    args = parser.parse_args(argv)
    return LoadOptions(
        path=args.model,
        num_ctx=args.ctx_size,
        num_parallel=args.parallel,
        num_batch=args.batch_size,
        num_thread=args.threads,
        num_gpu=args.gpu_layers,
        main_gpu=args.main_gpu,
        tensor_split=tuple(float(part) for part in args.tensor_split.split(",") if part),
        use_mmap=not args.no_mmap,
        flash_attention={"auto": None, "on": True, "off": False}[args.flash_attn],
        kv_cache_type=args.kv_cache_type,
        embedding=args.embedding,
        extra_buffers=not args.no_extra_buffers,
        projector=args.projector,
        adapters=tuple(args.adapter),
        rpc_servers=tuple(part for part in args.rpc.split(",") if part),
        draft_tokens=args.draft_tokens,
        draft_model=args.draft_model,
    )


def simulated_crash(options: LoadOptions, spec: str) -> tuple[Callable[[], None] | None, bool]:
    """The crash ``spec`` (``SIMULATED_CRASH``) asks of a runner loaded with ``options``, if any.

    Returns the action and whether it belongs at the first request's decode rather than the warm-up.
    """
    wanted = {part.strip() for part in spec.split(",") if part.strip()}
    unsafe = {
        "always": True,
        "extra-buffers": options.extra_buffers,
        "mmap": options.use_mmap,
        "flash-attention": options.flash_attention is not False,
    }
    if not any(unsafe.get(name, False) for name in wanted):
        return None, False
    return (lambda: os.kill(os.getpid(), signal.SIGSEGV)), "request" in wanted


class Runner:
    """Commands are read on a thread of their own and run by ``serve`` between decode steps, but for
    ``health``: the reader answers that at once, so a long decode step does not pass for a hung runner.
    """

    def __init__(
        self,
        model: LoadedModel,
        output: BinaryIO,
        before_first_decode: Callable[[], None] | None = None,
        vision: Vision | None = None,
        draft: DraftModel | None = None,
    ):
        self.model = model
        self.output = output
        self.engine = Engine(
            model,
            model.n_seq_max,
            self.emit,
            before_first_decode=before_first_decode,
            vision=vision,
            draft_tokens=model.options.draft_tokens,
            draft_model=draft,
        )
        self.inbox: queue.Queue[tuple[str, m.Request] | None] = queue.Queue()
        self._output_lock = threading.Lock()  # a message's fragment lines go out together

    def send(self, message: dict[str, Any], *, flush: bool = False) -> None:
        lines = protocol.encode(message)
        with self._output_lock:
            for line in lines:
                self.output.write(line)
            if flush:
                self.output.flush()

    def emit(self, request_id: str, event: m.Event, *, flush: bool = False) -> None:
        self.send(m.with_id(request_id, event), flush=flush)

    def read_commands(self, source: BinaryIO) -> None:
        decoder = protocol.Decoder()
        # Reading at most a line's limit at a time: a longer line arrives in parts, each refused.
        for line in iter(lambda: source.readline(protocol.LINE_LIMIT + 1), b""):
            try:
                command = decoder.feed(line)
            except ValueError as error:
                print(f"runner: ignoring a malformed command ({error}): {line[:200]!r}", file=sys.stderr)
                continue
            if command is None:
                continue
            try:
                request_id, request = m.decode_request(command)
            except ValueError as error:
                print(f"runner: refusing a malformed command ({error}): {line[:200]!r}", file=sys.stderr)
                if isinstance(sender := command.get("id"), str):  # its sender waits: tell it
                    self.emit(sender, m.ErrorEvent(str(error), 400), flush=True)
                continue
            if isinstance(request, m.HealthRequest):
                self.emit(request_id, self.health(), flush=True)
            else:
                self.inbox.put((request_id, request))
        self.inbox.put(None)  # the server went away: stop

    def serve(self) -> None:
        while True:
            try:
                command = self.inbox.get(block=not self.engine.busy)
                while True:
                    if not self.handle(command):
                        return
                    command = self.inbox.get_nowait()
            except queue.Empty:
                pass
            self.engine.step()
            self.output.flush()

    def handle(self, command: tuple[str, m.Request] | dict[str, Any] | None) -> bool:
        """Act on one command (decoded, or a wire object); False means shut down."""
        if isinstance(command, dict):
            wire = command
            try:
                command = m.decode_request(wire)
            except ValueError as error:
                sender = wire.get("id")
                self.emit(sender if isinstance(sender, str) else "", m.ErrorEvent(str(error), 400))
                return True
        if command is None or isinstance(command[1], m.ShutdownRequest):
            return False
        request_id, request = command
        try:
            match request:
                case m.CompletionRequest():
                    self.engine.submit(self.completion_job(request_id, request))
                case m.EmbedRequest():
                    self.engine.submit(Job(request_id, self.embedding_tokens(request), embed=True))
                case m.TokenizeRequest():
                    tokens = bounded_tokens(self.model, request.content, add_special=request.add_special)
                    self.emit(request_id, m.TokensResult(tokens))
                case m.CountRequest():
                    limit = request.limit
                    tokens = bounded_tokens(self.model, request.content, head=limit, add_special=False)
                    self.emit(request_id, m.CountResult(min(len(tokens), limit)))
                case m.DetokenizeRequest():
                    if invalid := [token for token in request.tokens if not self.model.valid_token(token)]:
                        raise ValueError(f"invalid token id {invalid[0]}")
                    self.emit(request_id, m.ContentResult(self.model.detokenize(list(request.tokens))))
                case m.CancelRequest():
                    self.engine.cancel(request_id)
                case m.HealthRequest():
                    self.emit(request_id, self.health())
        except (KeyError, TypeError, ValueError) as error:
            self.emit(request_id, m.ErrorEvent(str(error), 400))
        return True

    def completion_job(self, request_id: str, request: m.CompletionRequest) -> Job:
        job = Job(request_id, [], sampling=request.sampling, control=request.control)
        n_ctx = self.model.n_ctx_seq
        if not request.images:
            # A prompt of a context's length or more is cut to its head and tail (slots.truncate_prompt).
            job.tokens = bounded_tokens(self.model, request.prompt, head=n_ctx, tail=n_ctx)
            return job
        vision = self.engine.vision
        if vision is None:
            raise ValueError(m.NO_IMAGE_INPUT)

        def tokenize(text: str, first: bool) -> list[int]:
            return bounded_tokens(self.model, text, head=n_ctx + 1, add_special=first)

        try:
            pieces = pieces_of(request.prompt, request.images, tokenize, vision)
        except VisionError as error:
            raise ValueError(str(error)) from None
        if pieces and isinstance(pieces[0], ImagePiece):
            job.tokens.extend(self.model.special_prefix)  # the BOS a first text run would have brought
        for piece in pieces:
            if isinstance(piece, ImagePiece):
                job.images.append((len(job.tokens), piece))
                job.tokens.extend(piece.stand_ins())
            else:
                job.tokens.append(piece)
        return job

    def embedding_tokens(self, request: m.EmbedRequest) -> list[int]:
        limit = self.model.n_ctx_seq
        if self.model.options.embedding:
            limit = min(limit, self.model.n_batch)  # pooled models see the whole input in one batch
        # One token past the limit tells an input that does not fit; what follows it is never needed.
        tokens = bounded_tokens(self.model, request.content, head=limit + 1)
        if len(tokens) > limit:
            if not request.truncate:
                raise ValueError("the input length exceeds the context length")
            # The end-of-text token the tokenizer added (BERT's [SEP]) stays at the end.
            kept_end = [tokens[-1]] if self.model.add_eos and tokens[-1] == self.model.eos else []
            tokens = tokens[: limit - len(kept_end)] + kept_end
        return tokens

    def health(self) -> m.HealthReport:
        # Read from the command reader's thread while the engine runs: lengths are all it reads.
        return m.HealthReport(len(self.engine.active), len(self.engine.waiting), _resident_bytes())


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def main(argv: list[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    # The protocol owns the real stdout; anything native code prints goes to stderr instead.
    output = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    buffers = BufferLog()
    buffers.install()
    print(f"runner: system info: {ggml.system_info()}", file=sys.stderr, flush=True)
    if options.draft_tokens:
        count = options.draft_tokens
        drafts = (
            f"{count} drafts a step from {options.draft_model.name}"
            if options.draft_model
            else f"{count} n-gram drafts a step"
        )
        print(f"runner: speculative decoding, up to {drafts}", file=sys.stderr)
    crash, at_request = simulated_crash(options, os.environ.get(SIMULATED_CRASH, ""))
    try:
        model = load(options, before_first_decode=None if at_request else crash, last_error=lambda: buffers.last_error)
        vision = load_vision(model)
        draft = load_draft(model, lambda: buffers.last_error)
    except (LoadError, VisionError) as error:
        status = error.status if isinstance(error, LoadError) else 500
        output.writelines(protocol.encode(m.LoadFailed(str(error), status).to_wire()))
        output.flush()
        return 1
    runner = Runner(model, output, crash if at_request else None, vision, draft)
    total_bytes, vram_bytes = buffers.sizes()
    ready = m.Ready(
        n_ctx=model.n_ctx_seq,
        n_ctx_train=model.n_ctx_train,
        num_parallel=options.num_parallel,
        weights_bytes=model.weights_bytes() + (draft.model.weights_bytes() if draft else 0),
        total_bytes=total_bytes,
        vram_bytes=vram_bytes,
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        image_tokens=vision.image_tokens if vision else 0,
    )
    runner.send(ready.to_wire())
    output.flush()
    threading.Thread(target=runner.read_commands, args=(sys.stdin.buffer,), daemon=True).start()
    try:
        runner.serve()
    finally:
        runner.engine.close()
        if vision is not None:
            vision.close()
        if draft is not None:
            draft.close()
        model.close()
    return 0


def load_vision(model: LoadedModel) -> Vision | None:
    options = model.options
    if options.projector is None:
        return None
    use_gpu = options.num_gpu != 0 and bool(llama_cpp.llama_supports_gpu_offload())
    try:
        return Vision(options.projector, model.model, threads=options.num_thread, use_gpu=use_gpu)
    except VisionError:
        model.close()
        raise


def load_draft(model: LoadedModel, last_error: Callable[[], str]) -> DraftModel | None:
    """The draft model, loaded as the model is (threads, offload, a sequence for each slot), when it has one."""
    options = model.options
    if options.draft_model is None or not options.draft_tokens:
        return None
    draft_options = dataclasses.replace(
        options, path=options.draft_model, projector=None, adapters=(), rpc_servers=(), draft_model=None
    )
    try:
        draft = load(draft_options, last_error=last_error)
    except LoadError as error:
        model.close()
        raise LoadError(f"error loading the draft model {options.draft_model.name}: {error}", error.status) from None
    if (reason := vocabulary_mismatch(model, draft)) is not None:
        draft.close()
        model.close()
        raise LoadError(f"the draft model {options.draft_model.name} cannot draft for this model: {reason}", 400)
    return DraftModel(draft, model.n_vocab)


if __name__ == "__main__":
    sys.exit(main())
