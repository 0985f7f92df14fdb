"""Every example runs as a script and does what it says."""

from __future__ import annotations

from tests.conftest import Processes


def test_bank_example_runs(processes: Processes) -> None:
    """examples/bank.py hosts the bank in-process and prints alice's balance."""
    done = processes.run(["examples/bank.py"], timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    assert "alice holds 75" in done.stdout.decode()


def test_pipeline_example_runs(processes: Processes) -> None:
    """examples/pipeline.py spreads jobs over the pool and answers a request."""
    done = processes.run(["examples/pipeline.py"], timeout=30)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "request:" in out
    workers = {line.rsplit("(worker ", 1)[1] for line in out.splitlines() if line.startswith("job ")}
    assert len(workers) > 1


def test_vault_example_runs(processes: Processes) -> None:
    """examples/vault.py: balances read back by a new node equal what was deposited before it."""
    done = processes.run(["examples/vault.py"], timeout=30)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "alice holds 135 from 10 deposits" in out
    assert "carol holds 155 from 10 deposits" in out
