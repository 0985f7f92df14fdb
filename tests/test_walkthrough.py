"""README's cluster walkthrough, as written: vault nodes on a router keep every balance as nodes join and leave."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import zenoh

from edabus._cluster._membership import rendezvous_owner
from edabus._model._wire import actors_key
from tests.cluster._nodes import NodeProcess, client_config
from tests.conftest import ROOT, Processes

NODES = ("n1", "n2", "n3")


def _accounts() -> list[str]:
    """Three accounts: one that stays on n1, and one that each joining node takes over."""
    chosen: dict[str, str] = {}
    for i in range(100):
        account = f"y{i}"
        chosen.setdefault(rendezvous_owner(NODES, account), account)
    return [chosen[node] for node in NODES]


def live_keys(endpoint: str, node: str) -> list[str]:
    """The keys of the vault actors live on ``node``, as it answers on its actors queryable."""
    with zenoh.open(client_config(endpoint)) as session:
        replies = list(session.get(actors_key("vault", node), timeout=5.0))
    actors = [msgspec.msgpack.decode(r.ok.payload.to_bytes()) for r in replies if r.ok is not None]
    assert len(actors) == 1, f"{node} did not answer"
    keys: list[str] = actors[0]["vault/Vault"]
    return keys


def _cli(processes: Processes, *args: str) -> str:
    result = processes.run(["-m", "edabus", *args])
    assert result.returncode == 0, (args, result.stderr.decode(errors="replace")[-2000:])
    return result.stdout.decode()


def test_the_readme_vault_walkthrough_keeps_every_balance_across_joins_and_leaves(
    processes: Processes, router: str, tmp_path: Path
) -> None:
    """One node, deposits, two more nodes (keys move to them), then the first stops: every balance holds."""
    readme = (ROOT / "README.md").read_text()
    assert "edabus run examples.vault:app --connect" in readme  # the walkthrough this test follows
    env = {"EDABUS_VAULT_DB": str(tmp_path / "vault.db")}
    connect = ("--connect", router)

    def start(node_id: str) -> NodeProcess:
        node = NodeProcess(
            processes, router, tmp_path / f"{node_id}.log", target="examples.vault:app", node_id=node_id, env=env
        )
        node.wait_until_up("vault")
        return node

    def holdings(account: str) -> object:
        return json.loads(_cli(processes, "request", f"vault/{account}/holdings", "{}", *connect))

    accounts = _accounts()
    first = start("n1")
    for account in accounts:
        _cli(processes, "publish", f"vault/{account}/deposit", '{"amount": 5}', *connect)
    assert [holdings(a) for a in accounts] == [{"balance": 5, "deposits": 1}] * 3
    start("n2")
    start("n3")  # accounts[1] now belongs to n2 and accounts[2] to n3: their actors move there
    assert [holdings(a) for a in accounts] == [{"balance": 5, "deposits": 1}] * 3
    assert accounts[1] in live_keys(router, "n2")
    assert accounts[2] in live_keys(router, "n3")
    processes.stop(first.proc)  # a clean stop: accounts[0] moves too
    assert first.proc.returncode == 0
    assert [holdings(a) for a in accounts] == [{"balance": 5, "deposits": 1}] * 3
    assert accounts[0] in live_keys(router, rendezvous_owner(NODES[1:], accounts[0]))
