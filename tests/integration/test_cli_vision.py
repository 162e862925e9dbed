"""``pollama run`` with image paths, through the real CLI against a real server: the path in a one-shot
prompt, and one typed (escaped, as a terminal drops a file) in the interactive chat, reach the model.

The vision model is SmolLM2 with the test projector (``tools.vision_projector``), which turns each image
patch into the word of its colour: a greedy answer about a plain red picture names red.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from PIL import Image

from tests.servers import REPO, ServerProcess
from tools.test_models import ensure_vision_model

pytestmark = pytest.mark.timeout(240)

VISION = "eyes"
TEXT_ONLY = "blind"
QUESTION = "What colour is this picture? Answer with one word."
POLLAMA = str(REPO / ".venv" / "bin" / "pollama")


def picture(path: Path, colour: str, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 40), colour).save(path, format=fmt)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("cli-vision")
    process = ServerProcess(root).start()
    try:
        language, projector = ensure_vision_model()
        greedy = "PARAMETER temperature 0\nPARAMETER seed 1\nPARAMETER num_predict 16\n"
        for name, froms in ((VISION, [language, projector]), (TEXT_ONLY, [language])):
            modelfile = root / f"{name}.Modelfile"
            modelfile.write_text("".join(f"FROM {path}\n" for path in froms) + greedy)
            created = process.cli("create", name, "-f", str(modelfile))
            assert created.returncode == 0, created.stderr
        yield process
    finally:
        process.stop()


def test_a_path_in_the_prompt_is_attached(server: ServerProcess, tmp_path: Path) -> None:
    picture(tmp_path / "red.png", "red")
    ran = server.cli("run", VISION, f"{QUESTION} ./red.png", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Added image './red.png'" in ran.stderr
    assert "red" in ran.stdout.lower() and "blue" not in ran.stdout.lower()


def test_a_text_model_gets_the_path_as_text(server: ServerProcess, tmp_path: Path) -> None:
    picture(tmp_path / "red.png", "red")
    ran = server.cli("run", TEXT_ONLY, f"{QUESTION} ./red.png", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Added image" not in ran.stderr


def test_a_file_that_is_no_image_fails_without_asking(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("just text")
    ran = server.cli("run", VISION, "describe ./notes.png", cwd=tmp_path)
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        'Couldn\'t process file: "invalid file type: text/plain; charset=utf-8"',
        "Error: invalid file type: text/plain; charset=utf-8",
    ]


def test_a_dropped_file_in_the_chat_is_attached(server: ServerProcess, tmp_path: Path) -> None:
    path = picture(tmp_path / "holiday pics" / "red (1).jpg", "red", "JPEG")
    dropped = str(path).replace(" ", "\\ ").replace("(", "\\(").replace(")", "\\)")
    child = pexpect.spawn(
        POLLAMA,
        ["run", VISION],
        env={**server.env, "TERM": "dumb"},
        dimensions=(40, 200),
        encoding="utf-8",
        timeout=120,
        cwd=str(tmp_path),
    )
    try:
        child.expect_exact(">>> ")
        child.sendline(f"{dropped} {QUESTION}")  # starts with "/": a path, not an unknown command
        child.expect_exact(f"Added image '{path}'")
        child.expect_exact(">>> ")
        said = (child.before or "").lower()
        assert "unknown command" not in said
        assert "red" in said and "blue" not in said
        child.sendline("/bye")
        child.expect(pexpect.EOF)
    finally:
        if child.isalive():
            child.terminate(force=True)
