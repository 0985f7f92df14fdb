"""A closed bus made by ``edabus certs``: mutual TLS and an access-control list, end to end.

One router (``edabus router --config DIR/router.json5``) and one bank node
(``edabus run examples.bank:app --config DIR/node-bank.json5``) serve the whole
module; each test plays a client with one of the generated certificates, or
with none, or with one from a rogue CA, and checks what it can and cannot do.
Each refusal has a positive control: the same act with the right certificate
works, so the test would see it if the refusal were gone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import zenoh

from tests.conftest import ROOT, Processes, free_port, wait_for_port

WAIT_S = 20.0
FORGED = b"forged"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="edabus certs needs the openssl command")


@dataclass
class ClosedBus:
    dir: Path
    port: int
    processes: Processes

    def config(self, name: str) -> str:
        return str(self.dir / f"{name}.json5")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.processes.run(["-m", "edabus", *args], timeout=30.0)
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )


def certs(processes: Processes, directory: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return processes.run(["-m", "edabus", "certs", str(directory), *args], timeout=60.0)


def session(config: str | zenoh.Config) -> zenoh.Session:
    """A raw Zenoh session from a generated client config."""
    return zenoh.open(zenoh.Config.from_file(config) if isinstance(config, str) else config)


def wait_for_token(config: str, key_expr: str) -> None:
    """Wait until a liveliness token on ``key_expr`` is visible to a client with ``config``."""
    live = threading.Event()

    def on_token(sample: zenoh.Sample) -> None:
        if sample.kind == zenoh.SampleKind.PUT:
            live.set()

    with session(config) as s:
        tokens = s.liveliness().declare_subscriber(key_expr, on_token, history=True)
        try:
            assert live.wait(WAIT_S), f"no token on {key_expr} within {WAIT_S} s"
        finally:
            tokens.undeclare()


def live_tokens(s: zenoh.Session, key_expr: str) -> list[str]:
    return [str(r.ok.key_expr) for r in s.liveliness().get(key_expr, timeout=5.0) if r.ok is not None]


def replies(s: zenoh.Session, key: str) -> list[bytes]:
    """Every reply payload to a query sent to all matching queryables."""
    return [
        r.ok.payload.to_bytes()
        for r in s.get(key, target=zenoh.QueryTarget.ALL, consolidation=zenoh.ConsolidationMode.NONE, timeout=5.0)
        if r.ok is not None
    ]


@pytest.fixture(scope="module")
def closed_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClosedBus]:
    """Certificates for bank and vault, the TLS router and a bank node; all reaped at the end."""
    processes = Processes()
    try:
        directory = tmp_path_factory.mktemp("closed") / "tls"
        port = free_port()
        made = certs(processes, directory, "--app", "bank", "--app", "vault", "--router-port", str(port))
        assert made.returncode == 0, made.stderr.decode()
        router = processes.edabus("router", "--config", str(directory / "router.json5"), stdout=subprocess.DEVNULL)
        wait_for_port(port, proc=router)
        env = {"EDABUS_VAULT_DB": str(directory.parent / "vault.db")}
        for app, group in (("bank", "Account"), ("vault", "Vault")):
            node_log = directory.parent / f"{app}.log"
            with node_log.open("wb") as stderr:
                node = processes.edabus(
                    "run", f"examples.{app}:app", "--config", str(directory / f"node-{app}.json5"),
                    stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                )  # fmt: skip
            try:
                wait_for_token(str(directory / f"publisher-{app}.json5"), f"@edabus/member/{app}/{group}/**")
            except AssertionError:
                msg = f"the {app} node did not go live (exit {node.poll()}):\n{node_log.read_text()}"
                raise AssertionError(msg) from None
        yield ClosedBus(directory, port, processes)
    finally:
        processes.reap()


# -- the command ---------------------------------------------------------------------------------


@needs_openssl
def test_certs_writes_names_and_refuses_to_overwrite_a_ca(tmp_path: Path, processes: Processes) -> None:
    made = certs(processes, tmp_path, "--app", "shop")
    assert made.returncode == 0, made.stderr.decode()
    names = sorted(Path(line).name for line in made.stdout.decode().splitlines())
    assert names == sorted(
        ["ca.pem", "ca.key", "router.pem", "router.key", "router.json5"]
        + [f"{kind}-shop.{ext}" for kind in ("node", "publisher") for ext in ("pem", "key", "json5")]
    )
    subject = subprocess.run(  # noqa: S603
        ["openssl", "x509", "-in", str(tmp_path / "publisher-shop.pem"), "-noout", "-subject"],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "edabus-publisher-shop" in subject
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0  # keys are the owner's alone
    # Every generated config opens as a Zenoh config (json5, as edabus reads it).
    for name in ("router", "node-shop", "publisher-shop"):
        zenoh.Config.from_file(str(tmp_path / f"{name}.json5"))

    again = certs(processes, tmp_path, "--app", "shop")
    assert again.returncode == 1
    assert "already holds a CA" in again.stderr.decode()
    assert len(again.stderr.decode().strip().splitlines()) == 1
    before = (tmp_path / "ca.pem").read_bytes()
    forced = certs(processes, tmp_path, "--app", "shop", "--force")
    assert forced.returncode == 0, forced.stderr.decode()
    assert (tmp_path / "ca.pem").read_bytes() != before


def test_certs_without_openssl_says_so_and_exits_1(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter, with a PATH that holds no openssl
        [sys.executable, "-m", "edabus", "certs", str(tmp_path / "tls"), "--app", "bank"],
        capture_output=True,
        text=True,
        timeout=30.0,
        env={"PATH": str(tmp_path / "empty"), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: openssl not found on PATH: edabus certs needs the openssl command"
    assert not (tmp_path / "tls").exists()


def test_an_app_name_that_is_not_one_key_chunk_is_a_usage_error(tmp_path: Path, processes: Processes) -> None:
    result = certs(processes, tmp_path, "--app", "bank/**")
    assert result.returncode == 2
    assert "an app name is" in result.stderr.decode()


# -- who gets in ---------------------------------------------------------------------------------


@needs_openssl
def test_a_client_without_a_certificate_cannot_connect(closed_bus: ClosedBus) -> None:
    config = zenoh.Config.from_file(closed_bus.config("publisher-bank"))
    config.insert_json5("transport/link/tls/enable_mtls", "false")  # trusts the router, sends no certificate
    with pytest.raises(zenoh.ZError):
        session(config).close()
    plain = zenoh.Config.from_file(closed_bus.config("publisher-bank"))
    plain.insert_json5("connect/endpoints", json.dumps([f"tcp/127.0.0.1:{closed_bus.port}"]))
    plain.insert_json5("transport/link/protocols", '["tcp"]')
    with pytest.raises(zenoh.ZError):
        session(plain).close()
    with session(closed_bus.config("publisher-bank")):  # the control: with its certificate it connects
        pass


@needs_openssl
def test_a_certificate_from_a_rogue_ca_cannot_connect(closed_bus: ClosedBus, tmp_path: Path) -> None:
    # Same common name as the real bank node's, signed by another CA.
    rogue = certs(closed_bus.processes, tmp_path, "--app", "bank", "--router-port", str(closed_bus.port))
    assert rogue.returncode == 0, rogue.stderr.decode()
    config = zenoh.Config.from_file(closed_bus.config("node-bank"))
    config.insert_json5("transport/link/tls/connect_certificate", json.dumps(str(tmp_path / "node-bank.pem")))
    config.insert_json5("transport/link/tls/connect_private_key", json.dumps(str(tmp_path / "node-bank.key")))
    with pytest.raises(zenoh.ZError):
        session(config).close()


# -- what each certificate may do ----------------------------------------------------------------


@needs_openssl
def test_the_publisher_certificate_deposits_and_reads_a_balance_with_the_cli(closed_bus: ClosedBus) -> None:
    config = closed_bus.config("publisher-bank")
    published = closed_bus.cli("publish", "bank/account/p1/deposit", '{"amount": 5}', "--config", config)
    assert published.returncode == 0, published.stderr
    balance = closed_bus.cli("request", "bank/account/p1/balance", "{}", "--config", config)
    assert balance.returncode == 0, balance.stderr
    assert json.loads(balance.stdout) == {"account": "p1", "amount": 5}
    status = closed_bus.cli("status", "--json", "--config", config)
    assert status.returncode == 0, status.stderr
    assert "bank" in status.stdout


@needs_openssl
def test_a_reliable_message_is_acknowledged_through_the_acl(closed_bus: ClosedBus) -> None:
    # The vault's Deposit is reliable: a Zenoh query to its owner, acknowledged by its reply.
    config = closed_bus.config("publisher-vault")
    published = closed_bus.cli("publish", "vault/r1/deposit", '{"amount": 5}', "--config", config)
    assert published.returncode == 0, published.stderr
    holdings = closed_bus.cli("request", "vault/r1/holdings", "{}", "--config", config)
    assert holdings.returncode == 0, holdings.stderr
    assert json.loads(holdings.stdout) == {"balance": 5, "deposits": 1}
    # A bank publisher reaches no vault key.
    refused = closed_bus.cli(
        "request", "vault/r1/holdings", "{}", "--timeout", "1", "--config", closed_bus.config("publisher-bank")
    )
    assert refused.returncode != 0
    assert refused.stdout == ""


@needs_openssl
def test_the_publisher_certificate_cannot_answer_requests_nor_pose_as_a_member(closed_bus: ClosedBus) -> None:
    token = "@edabus/member/bank/Account/forged/gpus/0"  # noqa: S105 - a liveliness token, not a password

    @contextmanager
    def forge(config: str) -> Iterator[None]:
        """A raw session that answers every balance request with a forgery and holds a member token."""
        with session(config) as s:
            held = [
                s.declare_queryable("bank/account/*/balance", lambda q: q.reply(q.key_expr, FORGED)),
                s.liveliness().declare_token(token),
            ]
            # A round trip on the same link: the router has taken the declarations before its reply.
            assert replies(s, "@edabus/node/*/*/catalog"), "no catalog reply"
            yield
            del held

    with session(closed_bus.config("node-bank")) as watcher:
        # The control: with a node certificate the forgery is seen (nothing in edabus stops it).
        with forge(closed_bus.config("node-bank")):
            assert FORGED in replies(watcher, "bank/account/f1/balance")
            assert token in live_tokens(watcher, "@edabus/member/bank/**")
        with forge(closed_bus.config("publisher-bank")):
            answers = replies(watcher, "bank/account/f2/balance")
            assert answers, "the real bank node answered nothing"
            assert FORGED not in answers
            tokens = live_tokens(watcher, "@edabus/member/bank/**")
            assert any("/Account/" in t for t in tokens), tokens  # the real node's
            assert token not in tokens


@needs_openssl
def test_a_node_certificate_of_another_app_cannot_put_on_bank_keys(closed_bus: ClosedBus) -> None:
    with session(closed_bus.config("node-vault")) as vault:
        put(vault, "bank/account/v1/deposit", 7)
        assert replies(vault, "bank/account/v1/balance") == []  # nor ask the bank anything
    # The control: the same raw put with the bank's node certificate is applied. Its
    # balance query follows it on the same link, and the bank answers in wire order.
    with session(closed_bus.config("node-bank")) as bank:
        put(bank, "bank/account/v1/deposit", 3)
        balances = [msgspec.msgpack.decode(payload) for payload in replies(bank, "bank/account/v1/balance")]
    assert balances == [{"account": "v1", "amount": 3}]  # the vault's 7 never arrived


@needs_openssl
def test_a_node_certificate_of_another_app_cannot_take_part_in_bank_placement(closed_bus: ClosedBus) -> None:
    """A vault node's certificate cannot declare a bank member token: it cannot take bank keys."""
    token = "@edabus/member/bank/Account/from-vault/gpus/0"  # noqa: S105 - a liveliness token, not a password
    with session(closed_bus.config("node-bank")) as watcher, session(closed_bus.config("node-vault")) as vault:
        held = vault.liveliness().declare_token(token)
        assert replies(vault, "@edabus/node/*/*/catalog"), "no catalog reply"  # the router took the declaration
        tokens = live_tokens(watcher, "@edabus/member/**")
        assert any(t.startswith("@edabus/member/vault/") for t in tokens), tokens  # its own app's: allowed
        assert token not in tokens
        held.undeclare()


@needs_openssl
def test_only_an_app_s_own_nodes_can_answer_for_its_members(closed_bus: ClosedBus) -> None:
    """A vault node's certificate cannot answer for a bank member: it cannot prove (or contest) bank membership."""
    forged = msgspec.msgpack.encode({"node": "forged", "groups": ["bank/Account"]})
    key = "@edabus/identity/bank/forged"
    with session(closed_bus.config("publisher-bank")) as asker:
        for config, seen in (("node-vault", False), ("node-bank", True)):  # the bank's: the control
            with session(closed_bus.config(config)) as answerer:
                held = answerer.declare_queryable(key, lambda q: q.reply(q.key_expr, forged))
                assert replies(answerer, "@edabus/node/*/*/catalog"), "no catalog reply"  # the router took it
                assert (forged in replies(asker, key)) is seen, config
                held.undeclare()


@needs_openssl
def test_a_node_certificate_of_another_app_cannot_answer_for_bank_nodes(closed_bus: ClosedBus) -> None:
    """A vault node's certificate cannot answer on the bank's node keys: no catalog, statistics or barrier for it."""
    catalog = msgspec.msgpack.encode({"node": "posing", "entries": []})
    with session(closed_bus.config("publisher-bank")) as asker:
        for config, seen in (("node-vault", False), ("node-bank", True)):  # the bank's: the control
            with session(closed_bus.config(config)) as answerer:
                held = [
                    answerer.declare_queryable(
                        f"@edabus/node/bank/posing/{kind}", lambda q: q.reply(q.key_expr, catalog)
                    )
                    for kind in ("catalog", "stats", "barrier")
                ]
                assert replies(answerer, "@edabus/node/*/*/catalog"), "no catalog reply"  # the router took them
                for kind in ("catalog", "stats", "barrier"):
                    assert (catalog in replies(asker, f"@edabus/node/bank/*/{kind}")) is seen, (config, kind)
                del held
        # A publisher asks its own app's nodes their statistics (the control), not another app's,
        # and no node its live actors.
        assert replies(asker, "@edabus/node/bank/*/stats")
        assert replies(asker, "@edabus/node/vault/*/stats") == []
        assert replies(asker, "@edabus/node/bank/*/actors") == []
    with session(closed_bus.config("publisher-vault")) as vault_publisher:
        assert replies(vault_publisher, "@edabus/node/vault/*/stats")


def put(s: zenoh.Session, key: str, amount: int) -> None:
    s.put(key, msgspec.msgpack.encode({"amount": amount}), congestion_control=zenoh.CongestionControl.BLOCK)


@needs_openssl
def test_the_publisher_certificate_cannot_subscribe(closed_bus: ClosedBus) -> None:
    heard: dict[str, threading.Event] = {"node": threading.Event(), "publisher": threading.Event()}
    with (
        session(closed_bus.config("node-bank")) as node,
        session(closed_bus.config("publisher-bank")) as publisher,
    ):

        def on_sample(who: str) -> Callable[[zenoh.Sample], None]:
            return lambda _sample: heard[who].set()

        subscribers = [
            s.declare_subscriber("bank/**", on_sample(who)) for who, s in (("node", node), ("publisher", publisher))
        ]
        # Round trips on each link: the router has taken both declarations before these replies.
        assert replies(node, "@edabus/node/*/*/catalog")
        assert replies(publisher, "@edabus/node/*/*/catalog")
        with session(closed_bus.config("node-bank")) as sender:
            sender.put("bank/notice", b"hello", congestion_control=zenoh.CongestionControl.BLOCK)
        assert heard["node"].wait(WAIT_S), "the control: a node certificate's subscriber heard nothing"
        # The put went out to every subscriber before this query reached the router.
        assert replies(publisher, "@edabus/node/*/*/catalog")
        assert not heard["publisher"].is_set()
        del subscribers
