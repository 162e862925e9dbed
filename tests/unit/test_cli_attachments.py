"""Image paths in a prompt become attachments (``pollama.cli.attachments``), as in Ollama's CLI.

The extraction cases are Ollama's own (``cmd/interactive_test.go``: ``TestExtractFilenames``,
``TestExtractFileDataRemovesQuotedFilepath``), the files real images made with Pillow.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from PIL import Image

from pollama.cli import attachments
from pollama.cli.attachments import (
    AttachmentError,
    attach_images,
    extract_file_data,
    find_file_names,
    is_multimodal,
    names_a_file,
    read_image,
    sniff_content_type,
    unescape_path,
)

if TYPE_CHECKING:
    from pollama.cli.client import Client


def picture(path: Path, fmt: str = "PNG", colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(out, format=fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())
    return out.getvalue()


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- finding the names (Ollama's TestExtractFilenames) ----------------------------------------------


def test_unix_style_paths_as_ollama_finds_them() -> None:
    text = (
        " some preamble \n ./relative\\ path/one.png inbetween1 ./not a valid two.jpg inbetween2 ./1.svg\n"
        '/unescaped space /three.jpeg inbetween3 /valid\\ path/dir/four.png "./quoted with spaces/five.JPG\n'
        "/unescaped space /six.webp inbetween6 /valid\\ path/dir/seven.WEBP"
    )
    found = find_file_names(text)
    assert len(found) == 7
    endings = ["one.png", "two.jpg", "three.jpeg", "four.png", "five.JPG", "six.webp", "seven.WEBP"]
    for name, ending in zip(found, endings, strict=True):
        assert name.endswith(ending)
    assert found[0] == "./relative\\ path/one.png"
    assert found[1] == "./not a valid two.jpg"
    assert '"' not in found[4]
    assert not any("inbetween1" in name or "1.svg" in name for name in found)


def test_windows_style_paths_keep_their_drive() -> None:
    text = (
        " some preamble\n c:/users/jdoe/one.png inbetween1 c:/program files/someplace/two.jpg inbetween2 \n"
        " /absolute/nospace/three.jpeg inbetween3 /absolute/with space/four.png inbetween4\n"
        './relative\\ path/five.JPG inbetween5 "./relative with/spaces/six.png inbetween6\n'
        "d:\\path with\\spaces\\seven.JPEG inbetween7 c:\\users\\jdoe\\eight.png inbetween8 \n"
        ' d:\\program files\\someplace\\nine.png inbetween9 "E:\\program files\\someplace\\ten.PNG\n'
        "c:/users/jdoe/eleven.webp inbetween11 c:/program files/someplace/twelve.WebP inbetween12\n"
        "d:\\path with\\spaces\\thirteen.WEBP some ending\n"
    )
    found = find_file_names(text)
    assert len(found) == 13
    drives = {0: "c:", 1: "c:", 6: "d:", 7: "c:", 8: "d:", 9: "E:", 10: "c:", 11: "c:", 12: "d:"}
    for index, drive in drives.items():
        assert found[index].startswith(drive), found[index]
    assert found[0] == "c:/users/jdoe/one.png"
    assert found[6] == "d:\\path with\\spaces\\seven.JPEG"
    assert found[9] == "E:\\program files\\someplace\\ten.PNG"
    assert not any("inbetween2" in name for name in found)


@pytest.mark.parametrize(
    "text",
    [
        "what is in photo.png",  # no leading / ./ or \ : not a path to Ollama
        "look at ./x.gif and ./y.svg and ./z.wav",  # other extensions (wav: no audio in pollama)
        "./picture.pngs",  # the extension must end at a word boundary
    ],
)
def test_text_that_is_no_image_path(text: str) -> None:
    assert find_file_names(text) == []


def test_the_extension_ends_at_a_word_boundary() -> None:
    assert find_file_names("see ./a.png, then ./b.jpg.") == ["./a.png", "./b.jpg"]
    assert find_file_names("~/photo.png") == ["/photo.png"]  # Ollama does not expand ~


def test_shell_escapes_are_undone() -> None:
    assert (
        unescape_path("/my\\ photos/\\(1\\)\\ \\[x\\]\\{y\\}\\$\\&\\;\\'\\*\\?\\~.png")
        == "/my photos/(1) [x]{y}$&;'*?~.png"
    )
    assert unescape_path("/a\\\\\\ b.png") == "/a\\ b.png"  # one pass, left to right, like Go's Replacer
    assert unescape_path("c:\\users\\x.png") == "c:\\users\\x.png"  # other backslashes stay


def test_a_slash_line_is_a_file_when_a_candidate_starts_with_its_first_word() -> None:
    assert names_a_file("/tmp/cat.png what is this")
    assert names_a_file("/no/such/file.jpg")  # Ollama does not check existence here
    assert not names_a_file("/unknown command")
    assert names_a_file("/foo ./bar.png")  # one candidate from the first slash, spaces and all, as in Ollama
    assert not names_a_file("/foo\t./bar.png")  # a tab ends a candidate: "./bar.png" is not "/foo"


def test_multimodal_models() -> None:
    assert is_multimodal({"capabilities": ["completion", "vision"]})
    assert not is_multimodal({"capabilities": ["completion"]})
    assert is_multimodal({"capabilities": ["completion"], "projector_info": {"general.architecture": "clip"}})
    assert is_multimodal({"model_info": {"mllama.vision.block_count": 32}})
    assert not is_multimodal({})


# --- sniffing and reading ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif"), ("BMP", "image/bmp")],
)
def test_real_images_sniff_as_go_does(tmp_path: Path, fmt: str, content_type: str) -> None:
    assert sniff_content_type(picture(tmp_path / "x", fmt)) == content_type


def test_other_content_sniffs_as_go_does() -> None:
    assert sniff_content_type(b"hello, world\n") == "text/plain; charset=utf-8"
    assert sniff_content_type(b"\x00\x01\x02junk") == "application/octet-stream"
    assert sniff_content_type(b"%PDF-1.7") == "application/pdf"


def test_read_image(tmp_path: Path) -> None:
    data = picture(tmp_path / "a.png")
    assert read_image(str(tmp_path / "a.png")) == data
    assert read_image(str(tmp_path / "missing.png")) is None
    assert read_image(str(tmp_path / "a.png" / "below.png")) is None  # not a directory: names no file
    assert read_image("/" + "x" * 300 + ".png") is None  # name too long: names no file
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(AttachmentError, match=r"^invalid file type: text/plain; charset=utf-8$"):
        read_image(str(tmp_path / "text.png"))
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(AttachmentError, match="^EOF$"):
        read_image(str(tmp_path / "empty.png"))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(AttachmentError, match="is a directory"):
        read_image(str(tmp_path / "dir.png"))


def test_a_file_over_100mb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = picture(tmp_path / "big.jpg", "JPEG")
    monkeypatch.setattr(attachments, "MAX_FILE_SIZE", len(data) - 1)
    with pytest.raises(AttachmentError, match=r"^file size exceeds maximum limit \(100MB\)$"):
        read_image(str(tmp_path / "big.jpg"))


def test_the_real_limit_is_100_mib(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as file:
        file.write(picture(tmp_path / "seed.png"))
        file.truncate(100 * 1024 * 1024 + 1)  # sparse: cheap to make
    with pytest.raises(AttachmentError, match="file size exceeds"):
        read_image(str(path))


# --- extracting the data (Ollama's extractFileData) --------------------------------------------------


def test_a_relative_path_is_attached_and_removed(cwd: Path) -> None:
    data = picture(cwd / "photo.png")
    found = extract_file_data("what is in ./photo.png")
    assert found.text == "what is in"
    assert found.images == [data]
    assert found.paths == ["./photo.png"]
    assert found.encoded() == [base64.b64encode(data).decode()]


def test_a_quoted_path_is_removed_with_its_quotes(tmp_path: Path) -> None:
    path = tmp_path / "img.jpg"
    picture(path, "JPEG")
    found = extract_file_data(f"before '{path}' after")
    assert len(found.images) == 1
    assert found.text == "before  after"  # Ollama's expected value, two spaces


def test_an_escaped_dropped_path_is_unescaped(tmp_path: Path) -> None:
    path = tmp_path / "my photos (2)" / "a cat.webp"
    data = picture(path, "WEBP")
    typed = str(path).replace(" ", "\\ ").replace("(", "\\(").replace(")", "\\)")
    found = extract_file_data(f"{typed} describe this")
    assert found.images == [data]
    assert found.paths == [str(path)]
    assert found.text == "describe this"


def test_a_dropped_path_with_unescaped_spaces(tmp_path: Path) -> None:
    path = tmp_path / "holiday pics" / "beach.png"
    picture(path)
    found = extract_file_data(f"{path}")
    assert found.paths == [str(path)]
    assert found.text == ""  # nothing left: the message goes with its image and empty content


def test_several_files_keep_their_order_and_missing_ones_stay(tmp_path: Path) -> None:
    first, second = tmp_path / "one.png", tmp_path / "two.jpeg"
    one, two = picture(first), picture(second, "JPEG", "blue")
    missing = tmp_path / "nope.png"
    found = extract_file_data(f"compare {first} with {second} and {missing}")
    assert found.images == [one, two]
    assert found.paths == [str(first), str(second)]
    assert found.text == f"compare  with  and {missing}"


def test_a_path_named_twice_is_sent_twice(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    data = picture(path)
    found = extract_file_data(f"{path} and {path}")
    assert found.images == [data, data]
    assert found.text == "and"


def test_nothing_to_attach_leaves_the_text_but_trims_it() -> None:
    found = extract_file_data("  just words /not/here.png  ")
    assert found.images == []
    assert found.text == "just words /not/here.png"


def test_a_file_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    picture(good)
    picture(bad, "BMP")
    with pytest.raises(AttachmentError) as refused:
        extract_file_data(f"{good} {bad}")
    assert refused.value.message == "invalid file type: image/bmp"
    assert refused.value.added == [str(good)]


def test_a_gif_named_png_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "anim.png"
    data = picture(path, "GIF")
    assert extract_file_data(str(path)).images == [data]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    picture(path)
    path.chmod(0)
    with pytest.raises(AttachmentError, match="^open .*secret.png: permission denied$"):
        extract_file_data(str(path))


# --- the messages ------------------------------------------------------------------------------------


def test_attach_images_announces_each_file(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    picture(path)
    err = io.StringIO()
    found = attach_images(f"look {path}", err)
    assert found.text == "look"
    assert err.getvalue() == f"Added image '{path}'\n"


def test_attach_images_reports_what_failed(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    picture(good)
    bad.write_text("text")
    err = io.StringIO()
    with pytest.raises(AttachmentError):
        attach_images(f"{good} {bad}", err)
    assert err.getvalue() == (
        f"Added image '{good}'\nCouldn't process file: \"invalid file type: text/plain; charset=utf-8\"\n"
    )


# --- what the CLI sends ------------------------------------------------------------------------------


class FakeClient:
    """Records requests; answers one done line."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def generate(self, request: dict[str, Any]) -> Any:
        self.requests.append(("generate", request))
        yield {"response": "ok", "done": True}

    def chat(self, request: dict[str, Any]) -> Any:
        self.requests.append(("chat", {**request, "messages": [dict(m) for m in request["messages"]]}))
        yield {"message": {"role": "assistant", "content": "ok"}, "done": True}


def as_client(fake: FakeClient) -> Client:
    return cast("Client", fake)


def test_run_once_sends_the_images_with_generate(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pollama.cli.run import RunOptions, run_once

    data = picture(cwd / "photo.png")
    client = FakeClient()
    run_once(
        as_client(client),
        RunOptions(model="m", prompt="what is in ./photo.png", multimodal=True),
        interactive_terminal=False,
    )
    ((kind, request),) = client.requests
    assert kind == "generate"
    assert request["prompt"] == "what is in"
    assert request["images"] == [base64.b64encode(data).decode()]
    captured = capsys.readouterr()
    assert "Added image './photo.png'" in captured.err
    assert captured.out == "ok\n\n"


def test_run_once_leaves_text_models_alone(cwd: Path) -> None:
    from pollama.cli.run import RunOptions, run_once

    picture(cwd / "photo.png")
    client = FakeClient()
    run_once(as_client(client), RunOptions(model="m", prompt="what is in ./photo.png"), interactive_terminal=False)
    assert client.requests[0][1]["prompt"] == "what is in ./photo.png"
    assert "images" not in client.requests[0][1]


def test_run_once_refuses_a_bad_file_without_sending(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pollama.cli.client import ResponseError
    from pollama.cli.run import RunOptions, run_once

    (cwd / "fake.jpg").write_text("hello")
    client = FakeClient()
    with pytest.raises(ResponseError, match="invalid file type"):
        run_once(
            as_client(client),
            RunOptions(model="m", prompt="see ./fake.jpg", multimodal=True),
            interactive_terminal=False,
        )
    assert client.requests == []
    assert 'Couldn\'t process file: "invalid file type: text/plain; charset=utf-8"' in capsys.readouterr().err


def test_repl_messages_carry_images_even_when_empty(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pollama.cli import repl
    from pollama.cli.run import RunOptions

    data = picture(cwd / "photo.png")
    client = FakeClient()
    session = repl.Session(as_client(client), RunOptions(model="m"), {"capabilities": ["completion", "vision"]})
    assert repl._command(session, str(cwd / "photo.png")) == "message"  # a dropped file is no command
    assert repl._command(session, "/nonsense") is None
    repl._send(session, str(cwd / "photo.png"))
    repl._send(session, "and now?")
    (_, first), (_, second) = client.requests
    assert first["messages"] == [{"role": "user", "content": "", "images": [base64.b64encode(data).decode()]}]
    assert second["messages"][-1] == {"role": "user", "content": "and now?"}
    assert second["messages"][0]["images"]  # the history keeps the image
    out = capsys.readouterr()
    assert "Unknown command '/nonsense'" in out.out
    assert out.err.count("Added image") == 1


def test_repl_text_model_treats_paths_as_text(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pollama.cli import repl
    from pollama.cli.run import RunOptions

    picture(cwd / "photo.png")
    client = FakeClient()
    session = repl.Session(as_client(client), RunOptions(model="m"), {"capabilities": ["completion"]})
    assert repl._command(session, str(cwd / "photo.png")) is None
    assert "Unknown command" in capsys.readouterr().out
    repl._send(session, "./photo.png")
    assert client.requests[0][1]["messages"] == [{"role": "user", "content": "./photo.png"}]


def test_repl_help_mentions_files_for_multimodal_models(capsys: pytest.CaptureFixture[str]) -> None:
    from pollama.cli import repl
    from pollama.cli.run import RunOptions

    session = repl.Session(as_client(FakeClient()), RunOptions(model="m"), {"capabilities": ["vision"]})
    repl._command(session, "/?")
    assert "Use /path/to/file to include .jpg, .png, .webp images." in capsys.readouterr().out
    session.info = {"capabilities": ["completion"]}
    repl._command(session, "/?")
    assert "/path/to/file" not in capsys.readouterr().out


def test_repl_a_bad_file_ends_the_chat_with_the_error(cwd: Path) -> None:
    from pollama.cli import repl
    from pollama.cli.client import ResponseError
    from pollama.cli.run import RunOptions

    (cwd / "fake.png").write_text("hello")
    client = FakeClient()
    session = repl.Session(as_client(client), RunOptions(model="m"), {"capabilities": ["vision"]})
    with pytest.raises(ResponseError, match="invalid file type"):
        repl._send(session, "./fake.png")
    assert client.requests == [] and session.messages == []
