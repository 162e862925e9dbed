"""Image prompts: encode time and first-token latency, cold and cached, against llama.cpp's own mtmd path.

    python -m bench.vision [ROUNDS]     # 8 rounds unless told

Both sides run the vision test model (SmolLM2 and the test projector, ``tools.test_models vision``)
on the same threads, interleaved round by round:

- llama.cpp: in this process, through llama-cpp-python, the path ``llama-mtmd-cli`` takes:
  ``mtmd_tokenize`` the prompt with the image, ``mtmd_helper_eval_chunks`` (encode, then decode the
  text and image chunks), sample the first token. It keeps nothing between prompts, so a second turn
  about the same image costs what the first did.
- pollama: ``pollama serve`` with the model created from the two files; a streamed ``/api/chat``
  timed to its first content line. Cold: an image never seen. Cached: the same conversation again
  with one more turn, whose image the slot's prefix cache (and the encoder's LRU) already hold.

Encode time is mtmd's encoder alone on one image (``mtmd_encode_chunk``), the same library on both
sides. The test projector is tiny (its encoder takes about a millisecond), so the figures are mostly
the 64 image positions and the text being decoded; a real projector's encoder adds hundreds of ms to
each cold prompt, on both sides, and nothing to pollama's cached one.
"""

from __future__ import annotations

import base64
import ctypes
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
import llama_cpp.mtmd_cpp as mtmd
from PIL import Image

from pollama.runner.model import LoadOptions, load
from tests.servers import ServerProcess
from tools.test_models import ensure_vision_model

ROUNDS = 8
THREADS = 2
QUESTION = "Name the colour of this picture."
PROMPT = "<|im_start|>user\n<__media__>" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"


def picture(index: int) -> Image.Image:
    return Image.new("RGB", (64, 64), ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256))


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class LlamaCppMtmd:
    """llama.cpp's own multimodal path, in process."""

    def __init__(self, language: Path, projector: Path) -> None:
        self.model = load(LoadOptions(path=language, num_ctx=2048, num_parallel=1, num_batch=512,
                                      num_thread=THREADS, num_gpu=0))  # fmt: skip
        params = mtmd.mtmd_context_params_default()
        params.use_gpu, params.n_threads, params.print_timings = False, THREADS, False
        self.context = mtmd.mtmd_init_from_file(str(projector).encode(), self.model.model, params)
        self.sampler = llama_cpp.llama_sampler_init_greedy()

    def _chunks(self, image: Image.Image) -> Any:
        rgb = image.tobytes()
        bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb))
        text = PROMPT.encode()
        prompt = mtmd.mtmd_input_text(text, len(text), True, True)
        chunks = mtmd.mtmd_input_chunks_init()
        mtmd.mtmd_tokenize(self.context, chunks, ctypes.byref(prompt), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1)
        mtmd.mtmd_bitmap_free(bitmap)
        return chunks

    def encode_s(self, image: Image.Image) -> float:
        chunks = self._chunks(image)
        image_chunk = next(
            mtmd.mtmd_input_chunks_get(chunks, i) for i in range(mtmd.mtmd_input_chunks_size(chunks))
            if mtmd.mtmd_input_chunk_get_type(mtmd.mtmd_input_chunks_get(chunks, i)) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE
        )  # fmt: skip
        started = time.perf_counter()
        mtmd.mtmd_encode_chunk(self.context, image_chunk)
        elapsed = time.perf_counter() - started
        mtmd.mtmd_input_chunks_free(chunks)
        return elapsed

    def first_token_s(self, image: Image.Image) -> float:
        started = time.perf_counter()
        llama_cpp.llama_memory_clear(self.model.memory, True)
        chunks = self._chunks(image)
        past = llama_cpp.llama_pos(0)
        mtmd.mtmd_helper_eval_chunks(self.context, self.model.context, chunks, 0, 0, 512, True, ctypes.byref(past))
        llama_cpp.llama_sampler_sample(self.sampler, self.model.context, -1)
        elapsed = time.perf_counter() - started
        mtmd.mtmd_input_chunks_free(chunks)
        return elapsed


def pollama_first_token_s(http: httpx.Client, messages: list[dict[str, Any]]) -> tuple[float, str]:
    body = {
        "model": "eyes",
        "messages": messages,
        "options": {"temperature": 0, "num_predict": 8, "num_thread": THREADS},
    }
    started = time.perf_counter()
    first = None
    answer = ""
    with http.stream("POST", "/api/chat", json=body) as response:
        for line in response.iter_lines():
            if first is None:
                first = time.perf_counter() - started
            answer += json.loads(line)["message"]["content"]
    assert first is not None
    return first, answer


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"


def main(rounds: int) -> None:
    language, projector = ensure_vision_model()
    reference = LlamaCppMtmd(language, projector)
    with tempfile.TemporaryDirectory() as home:
        server = ServerProcess(Path(home), extra_env={"OLLAMA_NUM_PARALLEL": "1"}).start()
        try:
            modelfile = Path(home) / "Modelfile"
            modelfile.write_text(f"FROM {language}\nFROM {projector}\n")
            assert server.cli("create", "eyes", "-f", str(modelfile)).returncode == 0
            with httpx.Client(base_url=server.url, timeout=300) as http:
                pollama_first_token_s(http, [{"role": "user", "content": "hi"}])  # load the model
                encode, ours_cold, ours_cached, theirs = [], [], [], []
                for index in range(rounds):
                    image = picture(index)
                    encode.append(reference.encode_s(picture(1000 + index)))
                    theirs.append(reference.first_token_s(image))
                    turn = [{"role": "user", "content": QUESTION, "images": [base64.b64encode(png(image)).decode()]}]
                    cold, answer = pollama_first_token_s(http, turn)
                    turn += [{"role": "assistant", "content": answer}, {"role": "user", "content": "Are you sure?"}]
                    cached, _ = pollama_first_token_s(http, turn)
                    ours_cold.append(cold)
                    ours_cached.append(cached)
        finally:
            server.stop()
    print(f"image encode (mtmd, one 64x64 image):        {median_ms(encode)}")
    print(f"first token, llama.cpp mtmd (in process):     {median_ms(theirs)}")
    print(f"first token, pollama cold (HTTP, new image):  {median_ms(ours_cold)}")
    print(f"first token, pollama cached (next turn):      {median_ms(ours_cached)}")
    print(f"pollama cold / llama.cpp:   {statistics.median(ours_cold) / statistics.median(theirs):.2f}x")
    print(f"pollama cached / llama.cpp: {statistics.median(ours_cached) / statistics.median(theirs):.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
