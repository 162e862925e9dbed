"""The runner's engine with a real model and projector, in process: images of concurrent requests share a batch."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import llama_cpp
import pytest

from pollama.runner import messages as m
from pollama.runner.__main__ import Runner
from pollama.runner.model import LoadedModel, LoadOptions, load
from pollama.runner.vision import Vision
from tools.test_models import ensure_vision_model

PROMPT = "<|im_start|>user\n[img-0]Name the colour of this picture.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[LoadedModel, Vision]]:
    language, projector = ensure_vision_model()
    model = load(LoadOptions(path=language, num_ctx=1024, num_parallel=2, num_batch=512, num_thread=2, num_gpu=0))
    vision = Vision(projector, model.model, threads=2, use_gpu=False)
    yield model, vision
    vision.close()
    model.close()


def solid(red: int, green: int, blue: int) -> m.ImageInput:
    return m.ImageInput(16, 16, bytes([red, green, blue]) * 256)


def test_images_of_two_sequences_are_decoded_in_one_batch(
    loaded: tuple[LoadedModel, Vision], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, vision = loaded
    events: dict[str, list[m.Event]] = {}
    runner = Runner(model, io.BytesIO(), vision=vision)
    runner.engine.emit = lambda request_id, event: events.setdefault(request_id, []).append(event)
    decoded: list[tuple[bool, int, set[int]]] = []  # embeddings?, rows, sequences
    real_decode = llama_cpp.llama_decode

    def counting_decode(context: Any, batch: Any) -> int:
        sequences = {batch.seq_id[row][0] for row in range(batch.n_tokens)}
        decoded.append((bool(batch.embd), batch.n_tokens, sequences))
        return int(real_decode(context, batch))

    monkeypatch.setattr(llama_cpp, "llama_decode", counting_decode)
    sampling = m.Sampling(temperature=0, num_predict=8)
    for request_id, image in (("red", solid(255, 0, 0)), ("blue", solid(0, 0, 255))):
        request = m.CompletionRequest(PROMPT, sampling, m.Control(), (image,))
        runner.engine.submit(runner.completion_job(request_id, request))
    while runner.engine.busy:
        runner.engine.step()

    image_batches = [(rows, sequences) for embeddings, rows, sequences in decoded if embeddings]
    assert image_batches == [(2 * vision.image_tokens, {0, 1})]  # both images, one decode
    assert vision.image_tokens == 64
    for colour in ("red", "blue"):
        done = events[colour][-1]
        assert isinstance(done, m.DoneEvent)
        text = "".join(e.text for e in events[colour] if isinstance(e, m.TokenEvent)) + done.text
        assert colour in text.lower()
        assert done.prompt_eval_count > 64

    # The next turn about the red picture: the slot's cache holds it, so it is neither encoded nor decoded.
    encoded, batches = vision.encoded, len(image_batches)
    follow_up = PROMPT + "Red.<|im_end|>\n<|im_start|>user\nAre you sure?<|im_end|>\n<|im_start|>assistant\n"
    request = m.CompletionRequest(follow_up, sampling, m.Control(), (solid(255, 0, 0),))
    runner.engine.submit(runner.completion_job("again", request))
    while runner.engine.busy:
        runner.engine.step()
    done = events["again"][-1]
    assert isinstance(done, m.DoneEvent)
    assert done.prompt_cached_count > vision.image_tokens
    assert vision.encoded == encoded
    assert len([1 for embeddings, *_rest in decoded if embeddings]) == batches
