"""Images through a real server: store and create, every API, the prefix cache, context fitting, errors.

The vision model is SmolLM2 with the test projector (``tools.vision_projector``), whose constructed
weights turn each image patch into the word of its colour: so a greedy answer about a plain red
picture names red, and one about a blue picture names blue. That proves the image reaches the model.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from PIL import Image

from tests.ggufs import write_gguf
from tests.integration.conftest import upload
from tests.servers import ServerProcess
from tools.test_models import ensure_vision_model

VISION = "eyes"
TEXT_ONLY = "blind"
GREEDY = {"temperature": 0, "seed": 1, "num_predict": 16}
QUESTION = "Name the colour of this picture."


def picture(colour: str, fmt: str = "PNG", size: tuple[int, int] = (48, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def vision_files() -> tuple[Path, Path]:
    return ensure_vision_model()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("server"), extra_env={"OLLAMA_NUM_PARALLEL": "2"}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def models(server: ServerProcess, vision_files: tuple[Path, Path]) -> dict[str, str]:
    client = ollama.Client(host=server.url)
    language, projector = vision_files
    digests = {"model.gguf": upload(client, language), "mmproj.gguf": upload(client, projector)}
    assert client.create(VISION, files=digests).status == "success"
    assert client.create(TEXT_ONLY, files={"model.gguf": digests["model.gguf"]}).status == "success"
    return digests


@pytest.fixture
def client(server: ServerProcess, models: dict[str, str]) -> ollama.Client:
    return ollama.Client(host=server.url)


@pytest.fixture
def http(server: ServerProcess, models: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as session:
        yield session


def answer_about(client: ollama.Client, image: bytes) -> str:
    return client.generate(VISION, QUESTION, images=[image], options=GREEDY).response.lower()


# --- store and create ------------------------------------------------------------------------------


def test_a_projector_file_makes_a_vision_model_stored_as_ollama_stores_it(
    client: ollama.Client, http: httpx.Client, server: ServerProcess, models: dict[str, str]
) -> None:
    shown = http.post("/api/show", json={"model": VISION}).json()
    assert "vision" in shown["capabilities"]
    assert shown["projector_info"]["general.architecture"] == "clip"
    assert "vision" not in (client.show(TEXT_ONLY).capabilities or [])
    manifest = json.loads((server.models / "manifests/registry.ollama.ai/library" / VISION / "latest").read_text())
    media = {layer["digest"]: layer["mediaType"] for layer in manifest["layers"]}
    assert media[models["mmproj.gguf"]] == "application/vnd.ollama.image.projector"
    assert media[models["model.gguf"]] == "application/vnd.ollama.image.model"
    listed = server.cli("show", VISION)
    assert "Projector" in listed.stdout and "clip" in listed.stdout


def test_a_modelfile_with_two_from_files_creates_the_vision_model(
    server: ServerProcess, vision_files: tuple[Path, Path], models: dict[str, str], tmp_path: Path
) -> None:
    language, projector = vision_files
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {language}\nFROM {projector}\n")
    created = server.cli("create", "eyes-from-modelfile", "-f", str(modelfile))
    assert created.returncode == 0, created.stderr
    assert "vision" in (ollama.Client(host=server.url).show("eyes-from-modelfile").capabilities or [])


def test_a_projector_of_another_width_is_refused_at_create(
    client: ollama.Client, models: dict[str, str], tmp_path: Path
) -> None:
    wrong = write_gguf(
        tmp_path / "wrong.gguf",
        arch="clip",
        kv={"general.type": "mmproj", "clip.has_vision_encoder": True, "clip.vision.projection_dim": 999},
        file_type=None,
    )
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("mismatched", files={"model.gguf": models["model.gguf"], "mmproj.gguf": upload(client, wrong)})
    assert refused.value.status_code == 400
    assert "999" in refused.value.error and "576" in refused.value.error
    with pytest.raises(ollama.ResponseError):
        client.show("mismatched")  # nothing was written


# --- the image reaches the model --------------------------------------------------------------------


def test_the_answer_is_about_the_image(client: ollama.Client) -> None:
    red, blue = picture("red"), picture("blue")
    red_answer = answer_about(client, red)
    assert "red" in red_answer and "blue" not in red_answer
    blue_answer = answer_about(client, blue)
    assert "blue" in blue_answer
    assert answer_about(client, red) == red_answer  # same image, same (greedy) answer


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_every_format_decodes(client: ollama.Client, fmt: str) -> None:
    assert "red" in answer_about(client, picture("red", fmt))


def test_a_gif_gives_its_first_frame(client: ollama.Client) -> None:
    frames = [Image.new("RGB", (40, 40), colour) for colour in ("blue", "red", "red")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    assert "blue" in answer_about(client, out.getvalue())


def test_other_formats_and_bad_data_are_400s_naming_the_problem(http: httpx.Client) -> None:
    def generate(image: str) -> httpx.Response:
        return http.post(
            "/api/generate", json={"model": VISION, "prompt": QUESTION, "images": [image], "stream": False}
        )

    bmp = generate(b64(picture("red", "BMP")))
    assert bmp.status_code == 400 and "BMP" in bmp.json()["error"] and "PNG, JPEG, WebP or GIF" in bmp.json()["error"]
    garbage = generate(b64(b"\x89PNG\r\n\x1a\nnot really a png"))
    assert garbage.status_code == 400 and "image" in garbage.json()["error"]
    assert generate("not base64!").status_code == 400


def test_a_text_only_model_given_an_image_answers_ollamas_error(http: httpx.Client) -> None:
    reply = http.post(
        "/api/chat",
        json={"model": TEXT_ONLY, "stream": False,
              "messages": [{"role": "user", "content": "hi", "images": [b64(picture("red"))]}]},
    )  # fmt: skip
    assert reply.status_code == 400
    assert reply.json()["error"] == "this model is missing data required for image input"


def test_images_placed_by_img_tags_in_a_raw_prompt(client: ollama.Client) -> None:
    prompt = f"<|im_start|>user\n[img-1]{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    raw = client.generate(VISION, prompt, raw=True, images=[picture("red"), picture("blue")], options=GREEDY)
    assert "blue" in raw.response.lower()
    assert raw.prompt_eval_count is not None and raw.prompt_eval_count > 64  # one image: 64 positions


# --- chat, history, cache, context --------------------------------------------------------------


def test_several_images_in_one_message_and_across_the_history(client: ollama.Client) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Look at these.", "images": [picture("red"), picture("green")]},
        {"role": "assistant", "content": "I see them."},
        {"role": "user", "content": QUESTION, "images": [picture("blue")]},
    ]
    reply = client.chat(VISION, messages=messages, options=GREEDY)
    assert reply.prompt_eval_count is not None and reply.prompt_eval_count >= 3 * 64
    assert "blue" in reply.message.content.lower()


def test_the_second_turn_about_an_image_does_not_encode_it_again(server: ServerProcess, models: dict[str, str]) -> None:
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    url = "data:image/png;base64," + b64(picture("yellow", size=(60, 60)))
    history: list[Any] = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}],
        }
    ]
    first = sdk.chat.completions.create(model=VISION, messages=history, temperature=0, max_tokens=12, seed=3)
    assert "yellow" in (first.choices[0].message.content or "").lower()
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "Are you sure?"},
    ]
    second = sdk.chat.completions.create(model=VISION, messages=history, temperature=0, max_tokens=12, seed=3)
    assert first.usage is not None and second.usage is not None
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    # Everything of the first turn, its image's 64 positions included, came from the cache.
    assert details.cached_tokens >= first.usage.prompt_tokens - 1
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_images_count_toward_the_context_and_old_ones_are_dropped(client: ollama.Client) -> None:
    messages: list[dict[str, Any]] = []
    for colour in ["green", "red", "white", "black"] * 10:  # 40 images: 2560 positions, past num_ctx
        messages += [
            {"role": "user", "content": "And this?", "images": [picture(colour)]},
            {"role": "assistant", "content": colour},
        ]
    messages.append({"role": "user", "content": QUESTION, "images": [picture("blue")]})
    reply = client.chat(VISION, messages=messages, options={**GREEDY, "num_ctx": 2048})
    # Fitted by each image's measured 64 positions: most of the history stays. (By Ollama's guess of
    # 768 an image, two images would have filled the context.)
    assert reply.prompt_eval_count is not None and 1500 < reply.prompt_eval_count <= 2048


def test_parallel_requests_with_images_each_get_their_own(client: ollama.Client) -> None:
    answers: dict[str, str] = {}

    def ask(colour: str) -> None:
        answers[colour] = answer_about(client, picture(colour, size=(30, 30)))

    threads = [threading.Thread(target=ask, args=(colour,)) for colour in ("red", "blue")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert "red" in answers["red"] and "blue" in answers["blue"]


# --- the other APIs -----------------------------------------------------------------------------


def test_openai_remote_image_urls_are_refused(http: httpx.Client) -> None:
    reply = http.post(
        "/v1/chat/completions",
        json={"model": VISION, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]},
    )  # fmt: skip
    assert reply.status_code == 400
    assert "image URLs are not currently supported" in reply.json()["error"]["message"]


def test_anthropic_image_blocks(http: httpx.Client) -> None:
    reply = http.post(
        "/v1/messages",
        json={"model": VISION, "max_tokens": 12, "temperature": 0, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(picture("red"))}},
            {"type": "text", "text": QUESTION}]}]},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert "red" in reply.json()["content"][0]["text"].lower()


def test_responses_input_image(server: ServerProcess, models: dict[str, str]) -> None:
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    url = "data:image/png;base64," + b64(picture("blue"))
    response = sdk.responses.create(
        model=VISION,
        input=[{"role": "user", "content": [{"type": "input_image", "image_url": url, "detail": "auto"},
                                            {"type": "input_text", "text": QUESTION}]}],
        temperature=0, max_output_tokens=16,
    )  # fmt: skip
    assert "blue" in response.output_text.lower()


def test_a_stored_projector_that_does_not_fit_is_a_400_at_load(
    client: ollama.Client, http: httpx.Client, server: ServerProcess, models: dict[str, str], tmp_path: Path
) -> None:
    """A store written elsewhere (by Ollama, by hand) may pair them anyway: the load answers, nothing crashes."""
    wrong = write_gguf(
        tmp_path / "wide.gguf",
        arch="clip",
        kv={"general.type": "mmproj", "clip.has_vision_encoder": True, "clip.vision.projection_dim": 1024},
        file_type=None,
    )
    wrong_digest = upload(client, wrong)
    assert client.create(
        "eyes-swapped", files={"model.gguf": models["model.gguf"], "mmproj.gguf": models["mmproj.gguf"]}
    )
    manifest_path = server.models / "manifests/registry.ollama.ai/library/eyes-swapped/latest"
    manifest = json.loads(manifest_path.read_text())
    for layer in manifest["layers"]:
        if layer["mediaType"] == "application/vnd.ollama.image.projector":
            layer["digest"], layer["size"] = wrong_digest, wrong.stat().st_size
    manifest_path.write_text(json.dumps(manifest))
    reply = http.post("/api/chat", json={"model": "eyes-swapped", "stream": False,
                                         "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 400 and "1024" in reply.json()["error"]
    assert client.generate(VISION, "Say hi.", options=GREEDY).response  # the server is fine
