"""``POLLAMA_RPC_SERVERS``: parsed and checked in config, carried to the runner's ``--rpc``, planned for.

The runner side (greeting a server, the devices) is ``test_runner_rpc``; a real split over a real
``ggml-rpc-server`` is ``tests/integration/test_rpc.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from pollama.config import MAX_RPC_SERVERS, ConfigError, Settings, parse_rpc_servers
from pollama.runner.__main__ import parse_args
from pollama.runtime.memory import place_remote
from pollama.runtime.options import resolve
from pollama.runtime.process import RunnerConfig
from pollama.store.models import StoredModel
from tests.unit.test_memory import NEED
from tests.unit.test_scheduler_rules import Machine, hold, make_scheduler, run, use, weights

MIB = 1 << 20


def settings(**env: str) -> Settings:
    return Settings.from_env({"HOME": "/home/tester", **env})


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        ("", ()),
        ("192.168.1.20:50052", ("192.168.1.20:50052",)),
        (" 10.0.0.2:50052 , 10.0.0.3:50053 ", ("10.0.0.2:50052", "10.0.0.3:50053")),
        ("gpu-box.lan:50052,,", ("gpu-box.lan:50052",)),  # empty entries are nothing
        ("GPU-Box.LAN:050052", ("gpu-box.lan:50052",)),  # as llama.cpp reads it: host names ignore case
        ("localhost:1,localhost:65535", ("localhost:1", "localhost:65535")),
    ],
)
def test_valid_lists(text: str, servers: tuple[str, ...]) -> None:
    assert parse_rpc_servers(text) == servers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("192.168.1.20", "'192.168.1.20' is not host:port"),
        (":50052", "':50052' is not host:port"),
        ("host:", "the port must be a number from 1 to 65535"),
        ("host:0", "the port must be a number from 1 to 65535"),
        ("host:65536", "the port must be a number from 1 to 65535"),
        ("host:5005x", "the port must be a number from 1 to 65535"),  # llama.cpp's stoi would read 5005
        ("host:-1", "the port must be a number from 1 to 65535"),
        ("host:５００５２", "the port must be a number from 1 to 65535"),  # digits, but not ASCII ones
        ("[::1]:50052", "over IPv4 only"),
        ("::1:50052", "over IPv4 only"),
        ("a:1,b:2,A:1", "'A:1' is listed twice"),
    ],
)
def test_invalid_entries_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^POLLAMA_RPC_SERVERS: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_rpc_servers(text)


def test_at_most_llama_cpps_server_count() -> None:
    servers = ",".join(f"10.0.0.{n}:50052" for n in range(1, MAX_RPC_SERVERS + 1))
    assert len(parse_rpc_servers(servers)) == MAX_RPC_SERVERS
    with pytest.raises(ConfigError, match=f"{MAX_RPC_SERVERS + 1} servers; llama.cpp takes at most {MAX_RPC_SERVERS}"):
        parse_rpc_servers(servers + ",10.0.1.1:50052")


# --- settings -------------------------------------------------------------------------------------


def test_settings_keep_the_entries_and_check_them_at_server_start() -> None:
    # A client command reads the same environment: a wrong entry must not stop it, only the server.
    wrong = settings(POLLAMA_RPC_SERVERS="'10.0.0.2:50052, nohost'")
    assert wrong.rpc_servers == ("10.0.0.2:50052", "nohost")
    with pytest.raises(ConfigError, match="'nohost' is not host:port"):
        wrong.check_rpc_servers()
    checked = settings(POLLAMA_RPC_SERVERS=" Box:50052 ,10.0.0.3:50053").check_rpc_servers()
    assert checked.rpc_servers == ("box:50052", "10.0.0.3:50053")
    assert checked.describe()["POLLAMA_RPC_SERVERS"] == "box:50052,10.0.0.3:50053"


def test_unset_means_no_servers() -> None:
    assert settings().rpc_servers == ()
    assert settings().check_rpc_servers().rpc_servers == ()
    assert settings().describe()["POLLAMA_RPC_SERVERS"] == ""


# --- down to the runner ---------------------------------------------------------------------------


def test_resolve_gives_every_runner_the_servers(models: Callable[[], StoredModel]) -> None:
    model = models()
    config = resolve(settings(POLLAMA_RPC_SERVERS="10.0.0.2:50052,10.0.0.3:50052"), model, None).config
    assert config.rpc_servers == ("10.0.0.2:50052", "10.0.0.3:50052")
    assert resolve(settings(), model, None).config.rpc_servers == ()


def test_the_runner_command_line_carries_the_servers() -> None:
    config = RunnerConfig(model_path=Path("/m.gguf"), num_ctx=2048, rpc_servers=("10.0.0.2:50052", "box:50053"))
    arguments = config.arguments()
    assert arguments[arguments.index("--rpc") + 1] == "10.0.0.2:50052,box:50053"
    assert parse_args(arguments).rpc_servers == ("10.0.0.2:50052", "box:50053")
    plain = dataclasses.replace(config, rpc_servers=()).arguments()
    assert "--rpc" not in plain
    assert parse_args(plain).rpc_servers == ()


# --- planning -------------------------------------------------------------------------------------
# NEED (tests.unit.test_memory): ten layers of 110 MiB with their KV cache, a 50 MiB head, 100 MiB compute.


def test_all_layers_offloaded_leave_nothing_planned_here() -> None:
    placement = place_remote(NEED)
    assert placement.layers == NEED.shape.block_count + 1  # llama.cpp's "all of them", the head included
    assert placement.total == placement.ram == 0
    assert placement.vram_by_gpu == {} and placement.tensor_split == ()


def test_num_gpu_keeps_the_other_layers_here() -> None:
    placement = place_remote(NEED, num_gpu=4)
    assert placement.layers == 4
    assert placement.ram == 6 * 110 * MIB + 50 * MIB + 100 * MIB  # six layers, the head, the CPU's compute buffer
    assert place_remote(NEED, num_gpu=0).ram == NEED.total


def test_the_scheduler_offloads_everything_without_room_here(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        # Too little memory here for the model alone: the servers hold it.
        scheduler, farm, _ = make_scheduler(
            tmp_path, Machine(total=MIB, available=MIB), POLLAMA_RPC_SERVERS="10.0.0.2:50052"
        )
        model = models()
        rpc = ("10.0.0.2:50052",)
        loaded = await use(scheduler, model, rpc_servers=rpc)
        launch = farm.starts[0]
        assert launch.rpc_servers == rpc
        assert launch.num_gpu == 2 and launch.tensor_split == ()  # the synthetic model's one layer and its head

        # A ggml-rpc-server serves one client at a time: a second model replaces the first.
        other = models()
        held = hold(scheduler, other, rpc_servers=rpc)
        await held.got
        assert loaded.process.closed
        assert [config.model_path for config in farm.starts] == [weights(model), weights(other)]
        await held.done()

    run(scenario)


def test_an_explicit_num_gpu_reaches_the_runner(tmp_path: Path, models: Callable[[], StoredModel]) -> None:
    async def scenario() -> None:
        scheduler, farm, _ = make_scheduler(tmp_path, POLLAMA_RPC_SERVERS="10.0.0.2:50052")
        await use(scheduler, models(), rpc_servers=("10.0.0.2:50052",), num_gpu=1)
        assert farm.starts[0].num_gpu == 1

    run(scenario)
