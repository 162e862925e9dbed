"""``pollama``: Ollama's CLI verbs. Every verb but ``serve`` is a client of the server."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pollama.cli.attachments import is_multimodal
from pollama.cli.client import Client, ResponseError, Unauthorized
from pollama.cli.cluster import cluster as cluster_command
from pollama.cli.create import CreateError, run_create
from pollama.cli.progress import Progress
from pollama.cli.run import RunOptions, ensure_model, ensure_server, parse_think, run_embedding, run_once
from pollama.cli.show import render_show_info
from pollama.cli.tables import render_table
from pollama.cli.transfer import pull_with_progress, push_with_progress
from pollama.config import ConfigError, Settings
from pollama.gocompat.human import human_bytes, human_time, round_half_away
from pollama.gocompat.timefmt import parse_rfc3339
from pollama.store.names import ModelName
from pollama.version import __version__

__all__ = ["cli", "main"]

CLIENT_ENV = [
    ("OLLAMA_HOST", "IP Address for the ollama server (default 127.0.0.1:11434)"),
    ("OLLAMA_API_KEY", "API key sent to the server (when it has POLLAMA_API_KEYS)"),
    ("SSL_CERT_FILE", "PEM file of extra CA certificates trusted for an https OLLAMA_HOST"),
]
SERVER_ENV = [
    ("OLLAMA_DEBUG", "Show additional debug information (e.g. OLLAMA_DEBUG=1)"),
    ("OLLAMA_HOST", "IP Address for the ollama server (default 127.0.0.1:11434)"),
    ("OLLAMA_PORT", "Port to listen on when OLLAMA_HOST names none"),
    ("OLLAMA_CONTEXT_LENGTH", "Context length to use unless otherwise specified (default: 4096)"),
    ("OLLAMA_KEEP_ALIVE", 'The duration that models stay loaded in memory (default "5m")'),
    ("OLLAMA_MAX_LOADED_MODELS", "Maximum number of loaded models per GPU"),
    ("OLLAMA_MAX_QUEUE", "Maximum number of queued requests"),
    ("OLLAMA_MODELS", "The path to the models directory"),
    ("OLLAMA_NUM_PARALLEL", "Maximum number of parallel requests"),
    ("OLLAMA_NOPRUNE", "Do not prune model blobs on startup"),
    ("OLLAMA_ORIGINS", "A comma separated list of allowed origins"),
    ("OLLAMA_FLASH_ATTENTION", "Enabled flash attention"),
    ("OLLAMA_KV_CACHE_TYPE", "Quantization type for the K/V cache (default: f16)"),
    ("OLLAMA_LLM_LIBRARY", "Set LLM library to bypass autodetection"),
    ("OLLAMA_LOAD_TIMEOUT", 'How long to allow model loads to stall before giving up (default "5m")'),
    ("OLLAMA_TMPDIR", "Location for temporary files"),
    ("HTTPS_PROXY", "Proxy for registry requests (also HTTP_PROXY, NO_PROXY)"),
    ("OLLAMA_REGISTRY_CA", "PEM file of extra CA certificates trusted for registries"),
    ("DOCKER_CONFIG", "Directory of the Docker config.json holding registry credentials"),
    ("REGISTRY_AUTH_FILE", "A containers auth.json holding registry credentials"),
    ("POLLAMA_API_KEYS", "Comma separated API keys; every API then requires one"),
    ("POLLAMA_API_KEYS_FILE", "A file of API keys, one per line (# comments)"),
    ("POLLAMA_TLS_CERT", "PEM certificate (chain) to serve HTTPS with"),
    ("POLLAMA_TLS_KEY", "PEM private key of POLLAMA_TLS_CERT"),
    ("POLLAMA_RPC_SERVERS", "Comma separated host:port of ggml-rpc-servers to split models over"),
]


def env_help(variables: list[tuple[str, str]]) -> str:
    lines = "\n".join(f"      {name:<27}   {description}" for name, description in variables)
    return f"\b\nEnvironment Variables:\n{lines}"


class AliasedGroup(click.Group):
    """A group whose commands may have aliases (``ls`` for ``list``), as Cobra allows."""

    aliases = {"ls": "list", "start": "serve"}

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(name, name))


def settings() -> Settings:
    return click.get_current_context().find_root().obj


def client_command(function: Callable[..., Any]) -> Callable[..., Any]:
    """Give the command a connected client, failing with Ollama's message if no server answers."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with Client(settings()) as client:
            client.heartbeat()
            return function(client, *args, **kwargs)

    return wrapper


@click.group(cls=AliasedGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--version", "show_version", is_flag=True, help="Show version information")
@click.pass_context
def cli(ctx: click.Context, show_version: bool) -> None:
    """Large language model runner"""
    ctx.obj = Settings.from_env()
    if show_version:
        print_version(ctx.obj)
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def print_version(config: Settings) -> None:
    with Client(config, timeout=5) as client:
        try:
            server_version = client.version()
        except Unauthorized as err:
            click.echo(f"Warning: {err}")
            click.echo(f"Warning: client version is {__version__}")
            return
        except (ResponseError, OSError):
            click.echo("Warning: could not connect to a running Ollama instance")
            click.echo(f"Warning: client version is {__version__}")
            return
    click.echo(f"pollama version is {__version__} (Ollama API {server_version})")


@cli.command(epilog=env_help(SERVER_ENV))
def serve() -> None:
    """Start pollama"""
    # Imported here: the server stack (FastAPI, uvicorn) would slow every client verb's start.
    from pollama.registry.keys import PRIVATE_KEY, ensure_identity
    from pollama.server.serve import ListenError
    from pollama.server.serve import serve as run_server

    config = settings()
    try:
        identity, generated = ensure_identity(config.home)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if generated:
        click.echo(f"Couldn't find '{config.home / PRIVATE_KEY}'. Generating new private key.")
        click.echo(f"Your new public key is: \n\n{identity.public_line}\n")
    try:
        run_server(config)
    except (ListenError, ConfigError) as err:
        raise click.ClickException(str(err)) from None


@cli.command(epilog=env_help(CLIENT_ENV))
@click.argument("model")
@click.option(
    "-f",
    "--file",
    "modelfile",
    type=click.Path(path_type=Path),
    help='Name of the Modelfile (default "Modelfile")',
)
@click.option("-q", "--quantize", default="", help="Quantize model to this level (e.g. q4_K_M)")
@click.option("--draft-quantize", default="", help="Quantize the draft model to this level (e.g. q4_K_M)")
@client_command
def create(client: Client, model: str, modelfile: Path | None, quantize: str, draft_quantize: str) -> None:
    """Create a model"""
    if not ModelName.parse(model).is_valid():
        raise click.ClickException(f"invalid model name: {model}")
    with Progress() as progress:
        run_create(client, model, modelfile, progress, quantize=quantize, draft_quantize=draft_quantize)


@cli.command(epilog=env_help(CLIENT_ENV))
@click.argument("model")
@click.option("--license", "show_license", is_flag=True, help="Show license of a model")
@click.option("--modelfile", "show_modelfile", is_flag=True, help="Show Modelfile of a model")
@click.option("--parameters", "show_parameters", is_flag=True, help="Show parameters of a model")
@click.option("--template", "show_template", is_flag=True, help="Show template of a model")
@click.option("--system", "show_system", is_flag=True, help="Show system message of a model")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed model information")
@client_command
def show(client: Client, model: str, verbose: bool, **flags: bool) -> None:
    """Show information for a model"""
    chosen = [name.removeprefix("show_") for name, value in flags.items() if value]
    if len(chosen) > 1:
        raise click.ClickException(
            "only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified"
        )
    info = client.show(model, verbose=verbose)
    if not chosen:
        click.echo(render_show_info(info, verbose=verbose), nl=False)
        return
    field = chosen[0]
    text = info.get(field) or ""
    # Ollama prints these three with a newline, system and template exactly as stored.
    click.echo(text, nl=field in ("license", "modelfile", "parameters"))


@cli.command("list", epilog=env_help(CLIENT_ENV))
@click.argument("prefix", required=False)
@client_command
def list_models(client: Client, prefix: str | None) -> None:
    """List models"""
    rows = []
    for model in client.list().get("models") or []:
        if prefix and not model["name"].lower().startswith(prefix.lower()):
            continue
        size = "-" if model.get("remote_model") else human_bytes(model["size"])
        modified = human_time(parse_rfc3339(model["modified_at"]))
        rows.append([model["name"], model["digest"][:12], size, modified])
    click.echo(render_table(rows, ["NAME", "ID", "SIZE", "MODIFIED"]), nl=False)


RUN_ENV = [*CLIENT_ENV, ("OLLAMA_NOHISTORY", "Do not preserve readline history")]


@cli.command(epilog=env_help(RUN_ENV))
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--keepalive", help="Duration to keep a model loaded (e.g. 5m)")
@click.option("--verbose", is_flag=True, help="Show timings for response")
@click.option("--insecure", is_flag=True, help="Use an insecure registry")
@click.option("--nowordwrap", is_flag=True, help="Don't wrap words to the next line automatically")
@click.option("--format", "answer_format", default="", help="Response format (e.g. json)")
@click.option(
    "--think", "think_flag", is_flag=True, default=False,
    help="Enable thinking mode: --think=true/false or high/medium/low for supported models",
)  # fmt: skip
@click.option("--think-value", "think", hidden=True, default=None)
@click.option("--hidethinking", is_flag=True, help="Hide thinking output (if provided)")
@click.option("--truncate", type=bool, default=None, help="For embedding models: truncate inputs to the context")
@click.option("--dimensions", type=int, default=0, help="Truncate output embeddings to this dimension")
def run(
    model: str,
    prompt: tuple[str, ...],
    keepalive: str | None,
    verbose: bool,
    insecure: bool,
    nowordwrap: bool,
    answer_format: str,
    think_flag: bool,
    think: str | None,
    hidethinking: bool,
    truncate: bool | None,
    dimensions: int,
) -> None:
    """Run a model"""
    if answer_format and answer_format != "json":
        raise click.ClickException(f'invalid format "{answer_format}": only "json" is supported')
    text = " ".join(prompt)
    piped = not sys.stdin.isatty()
    if piped and (stdin_text := sys.stdin.read()):
        text = f"{stdin_text} {text}" if text else stdin_text
    terminal = sys.stdout.isatty() and not piped
    thinking = parse_think(think or ("true" if think_flag else None))
    options = RunOptions(
        model=model, prompt=text, format=answer_format, keep_alive=keepalive, think=thinking,
        hide_thinking=hidethinking, word_wrap=not nowordwrap and terminal, verbose=verbose,
        truncate=truncate, dimensions=dimensions,
    )  # fmt: skip
    with Client(settings()) as client:
        ensure_server(client, settings())
        try:
            info = ensure_model(client, model)
        except ResponseError as err:
            if err.status != 404:
                raise
            pull_with_progress(client, model, insecure=insecure)
            info = client.show(model)
        capabilities = info.get("capabilities") or []
        if "embedding" in capabilities and "completion" not in capabilities:
            run_embedding(client, options)
            return
        if options.think is None and "thinking" in capabilities:
            options.think = True
        options.multimodal = is_multimodal(info)
        if text or not terminal:
            run_once(client, options, interactive_terminal=terminal)
            return
        from pollama.cli.repl import chat_loop

        chat_loop(client, options, info, settings())


@cli.command(epilog=env_help(CLIENT_ENV))
@click.argument("model")
@click.option("--insecure", is_flag=True, help="Use an insecure registry")
@client_command
def pull(client: Client, model: str, insecure: bool) -> None:
    """Pull a model from a registry"""
    pull_with_progress(client, model, insecure=insecure)


@cli.command(epilog=env_help(CLIENT_ENV))
@click.argument("model")
@click.option("--insecure", is_flag=True, help="Use an insecure registry")
@client_command
def push(client: Client, model: str, insecure: bool) -> None:
    """Push a model to a registry"""
    destination = push_with_progress(client, model, insecure=insecure)
    click.echo(f"\nYou can find your model at:\n\n\t{destination}")


@cli.command("ps", epilog=env_help(CLIENT_ENV))
@click.argument("prefix", required=False)
@client_command
def running(client: Client, prefix: str | None) -> None:
    """List running models"""
    rows = []
    models = [model for model in client.running().get("models") or [] if not prefix or model["name"].startswith(prefix)]
    # A pollama cluster says which node holds each model (pollama.cluster): a column of its own then.
    clustered = any("node" in model for model in models)
    for model in models:
        expires = parse_rfc3339(model["expires_at"])
        stopping = expires < dt.datetime.now(dt.UTC)
        until = "Stopping..." if stopping else human_time(expires)
        size = int(model.get("size") or 0)
        processor = processor_label(size, int(model.get("size_vram") or 0))
        row = [model["name"], model["digest"][:12], human_bytes(size), processor, str(model["context_length"]), until]
        if clustered:
            row.append(f"{model.get('node_address', '')} {str(model.get('node', ''))[:8]}".strip())
        rows.append(row)
    headers = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"] + (["NODE"] if clustered else [])
    click.echo(render_table(rows, headers), nl=False)


def processor_label(size: int, size_vram: int) -> str:
    """Where a model runs, as ``ollama ps`` says it: ``100% CPU``, ``100% GPU`` or ``48%/52% CPU/GPU``."""
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu = round_half_away((size - size_vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


@cli.command(epilog=env_help(CLIENT_ENV))
@click.argument("model")
@client_command
def stop(client: Client, model: str) -> None:
    """Stop a running model"""
    try:
        unload(client, model)
    except ResponseError as err:
        if "not found" in err.message:
            raise ResponseError(f'couldn\'t find model "{model}" to stop', err.status) from None
        raise


@cli.command("cp", epilog=env_help(CLIENT_ENV))
@click.argument("source")
@click.argument("destination")
@client_command
def copy(client: Client, source: str, destination: str) -> None:
    """Copy a model"""
    client.copy(source, destination)
    click.echo(f"copied '{source}' to '{destination}'")


@cli.command("rm", epilog=env_help(CLIENT_ENV))
@click.argument("models", nargs=-1, required=True)
@client_command
def remove(client: Client, models: tuple[str, ...]) -> None:
    """Remove a model"""
    for model in models:
        try:
            unload(client, model)
        except ResponseError as err:
            if "not found" not in err.message.lower():
                click.echo(f"Warning: unable to stop model '{model}'", err=True)
        client.delete(model)
        click.echo(f"deleted '{model}'")


def unload(client: Client, model: str) -> None:
    """Ask the server to unload a model (``keep_alive: 0``), as Ollama's CLI does before deleting."""
    client.show(model)
    for _event in client.generate({"model": model, "keep_alive": 0}):
        pass


cli.add_command(cluster_command)


def _split_think(argv: list[str]) -> list[str]:
    """Cobra's optional value: a bare ``--think`` means true and leaves the next word to the prompt;
    only ``--think=level`` carries a value."""
    return [part for arg in argv for part in (["--think-value", arg[8:]] if arg.startswith("--think=") else [arg])]


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=_split_think(sys.argv[1:] if argv is None else argv), prog_name="pollama", standalone_mode=False)
    except click.exceptions.Exit as done:
        return int(done.exit_code or 0)
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 130
    except click.ClickException as err:
        click.echo(f"Error: {err.format_message()}", err=True)
        return err.exit_code
    except (ResponseError, CreateError) as err:
        click.echo(f"Error: {err}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
