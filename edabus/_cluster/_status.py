"""What the live nodes host and count, read from any process on the bus (``edabus status``).

Two reads: the member liveliness tokens
(``@edabus/member/{app}/{group}/{node}/gpus/{n}``) say which nodes host which groups now,
and every node's statistics queryable (``@edabus/node/<app>/<id>/stats``) answers with
one `SupervisorStatistics` per group. A bus opened with `connect` follows the
tokens itself (a liveliness subscriber's history, `Router`), and that view is
read once the statistics are in: a liveliness get sent from that same session,
alongside the statistics query, came back empty about one time in four. A node
that holds tokens but sent no readable statistics within the timeout is listed
with its error, not left out. Asked for the actors, it also reads every node's
live-actor queryable (``@edabus/node/<app>/<id>/actors``): which node holds which key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import anyio
import msgspec
import zenoh

from edabus._model._statistics import SupervisorStatistics
from edabus._model._wire import actors_key, member_key, parse_member_key, parse_node_key, stats_key
from edabus._transport._bus import Bus

__all__ = ["ClusterStatus", "NodeStatus", "gather_status", "render_json", "render_table"]

ALL_NODES = "*"  # the node of a group's totals, as in a key expression
_stats_decoder = msgspec.msgpack.Decoder(list[SupervisorStatistics])
_actors_decoder = msgspec.msgpack.Decoder(dict[str, list[str]])

Actors = dict[str, dict[str, tuple[str, ...]]]  # {"app/group": {key: (node, ...)}}


class NodeStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One live node: its groups' statistics, or why there are none."""

    node: str
    groups: tuple[SupervisorStatistics, ...] = ()
    error: str | None = None


class ClusterStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The live nodes (sorted by id) and the members of each ``"app/group"``.

    ``actors``, when asked for: the live actors of each ``"app/group"``, each key with
    the nodes that hold it (one, unless it is moving right now), sorted by key.
    """

    nodes: tuple[NodeStatus, ...]
    members: dict[str, tuple[str, ...]]
    actors: Actors | None = None

    def totals(self) -> list[SupervisorStatistics]:
        """Each group's counters summed over the nodes that answered (peaks: the highest); node ``*``."""
        by_group: dict[tuple[str, str], list[SupervisorStatistics]] = {}
        for node in self.nodes:
            for stats in node.groups:
                by_group.setdefault((stats.app, stats.group), []).append(stats)
        return [_sum(records) for _, records in sorted(by_group.items())]


def _sum(records: Sequence[SupervisorStatistics]) -> SupervisorStatistics:
    first = records[0]
    fields: dict[str, int | float] = {}
    for name in first.__struct_fields__:
        value = getattr(first, name)
        if isinstance(value, int | float):
            values = [getattr(record, name) for record in records]
            fields[name] = max(values) if name.endswith("_peak") else sum(values)
    return msgspec.structs.replace(first, node=ALL_NODES, **fields)


async def gather_status(bus: Bus, *, timeout: float, actors: bool = False) -> ClusterStatus:
    """Read the member tokens and every node's statistics (and live actors), all within ``timeout`` seconds."""
    tokens: list[str] = []
    replies: list[zenoh.Reply] = []
    actor_replies: list[zenoh.Reply] = []

    async def read_tokens() -> None:
        if not bus._router.enabled:  # a bus that does not follow the tokens itself
            tokens.extend(await bus.live_tokens(member_key("*", "*"), timeout=timeout))

    async def read(key_of: Callable[[str], str], into: list[zenoh.Reply]) -> None:
        into.extend(await bus._ask_each_app(key_of, timeout))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_tokens)
        tg.start_soon(read, lambda app: stats_key(app, "*"), replies)
        if actors:
            tg.start_soon(read, lambda app: actors_key(app, "*"), actor_replies)
    if bus._router.enabled:
        followed = bus._router.members()
        members = {f"{app}/{group}": tuple(nodes) for (app, group), nodes in sorted(followed.items()) if nodes}
    else:
        members = _members(tokens)
    answers = _answers(replies)
    hosting = {node for nodes in members.values() for node in nodes}
    silent = f"no statistics reply within {timeout:g} s"
    nodes = tuple(
        answers[node] if node in answers else NodeStatus(node=node, error=silent)
        for node in sorted(hosting | answers.keys())
    )
    return ClusterStatus(nodes=nodes, members=members, actors=_actors(actor_replies) if actors else None)


def _members(tokens: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``{"app/group": (node, ...)}`` from member token keys (app, group and node are one chunk each)."""
    members: dict[str, list[str]] = {}
    for token in tokens:
        parsed = parse_member_key(token)
        if parsed is not None:
            app, group, node, _ = parsed
            members.setdefault(f"{app}/{group}", []).append(node)
    return {group: tuple(sorted(nodes)) for group, nodes in sorted(members.items())}


def _answers(replies: Iterable[zenoh.Reply]) -> dict[str, NodeStatus]:
    """A `NodeStatus` per node that replied; a reply names its app and node in its key.

    A node of two apps answers once per app: its groups are put together.
    """
    answers: dict[str, NodeStatus] = {}
    for reply in replies:
        source = None if reply.ok is None else parse_node_key(str(reply.ok.key_expr))
        if reply.ok is None or source is None:
            continue  # an error reply names no node; its tokens still list it
        app, node = source
        try:
            groups = _stats_decoder.decode(reply.ok.payload.to_bytes())
        except Exception as exc:  # noqa: BLE001 - any reply may be hostile: report it, never crash
            answers[node] = NodeStatus(node=node, error=f"unreadable statistics: {type(exc).__name__}: {exc}"[:300])
            continue
        known = answers.get(node)
        if known is not None and known.error:
            continue
        mine = [s for s in groups if s.app == app]  # a node speaks for the app whose key it answered on
        both = (*(known.groups if known is not None else ()), *mine)
        answers[node] = NodeStatus(node=node, groups=tuple(sorted(both, key=lambda s: (s.app, s.group))))
    return answers


def _actors(replies: Iterable[zenoh.Reply]) -> Actors:
    """``{"app/group": {key: (node, ...)}}`` from the nodes' live-actor replies (unreadable ones left out)."""
    held: dict[str, dict[str, list[str]]] = {}
    for reply in replies:
        source = None if reply.ok is None else parse_node_key(str(reply.ok.key_expr))
        if reply.ok is None or source is None:
            continue
        app, node = source
        try:
            groups = _actors_decoder.decode(reply.ok.payload.to_bytes())
        except Exception:  # noqa: BLE001, S112 - any reply may be hostile; its node's statistics still show
            continue
        for group, keys in groups.items():
            if not group.startswith(f"{app}/"):
                continue  # a node speaks for the app whose key it answered on
            by_key = held.setdefault(group, {})
            for key in keys:
                by_key.setdefault(key, []).append(node)
    return {
        group: {key: tuple(sorted(nodes)) for key, nodes in sorted(by_key.items())}
        for group, by_key in sorted(held.items())
    }


# -- rendering ----------------------------------------------------------------------------------


def render_json(status: ClusterStatus) -> str:
    """The status as a JSON document: ``{"nodes": [...], "members": {...}, "totals": [...]}`` (and ``"actors"``)."""
    document: dict[str, object] = {"nodes": status.nodes, "members": status.members, "totals": status.totals()}
    if status.actors is not None:
        document["actors"] = status.actors
    return msgspec.json.format(msgspec.json.encode(document), indent=2).decode()


_COLUMNS = (
    "NODE", "GROUP", "KIND", "ACTORS", "MAILBOX", "INBOX", "RECEIVED", "HANDLED",
    "FAILED", "DEAD", "DROPPED", "OVERFLOW", "RESTARTS", "NOT OWNED", "AVG MS",
)  # fmt: skip
_LEFT = 3  # NODE, GROUP and KIND are text, left-aligned; the rest are numbers


def _row(stats: SupervisorStatistics) -> list[str]:
    calls = stats.handled + stats.failed
    mean_ms = f"{1000 * stats.handler_seconds / calls:.3f}" if calls else "-"
    return [
        stats.node,
        f"{stats.app}/{stats.group}",
        stats.kind,
        str(stats.live_actors),
        f"{stats.mailbox_depth}/{stats.mailbox_peak}",
        f"{stats.inbox_depth}/{stats.inbox_peak}",
        *map(str, (stats.received, stats.handled, stats.failed, stats.dead_letters, stats.dropped, stats.overflow)),
        *map(str, (stats.restarts, stats.not_owned)),
        mean_ms,
    ]


def _table(rows: Sequence[Sequence[str]], left: int = _LEFT) -> list[str]:
    """Rows as aligned lines: text columns (the first ``left``) padded on the right, numbers on the left."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = (
            cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        lines.append("  ".join(cells).rstrip())
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render_table(status: ClusterStatus) -> str:
    """The status as a plain-text table: a row per group on each node, then each group's totals."""
    rows: list[list[str]] = [list(_COLUMNS)]
    notes: list[str] = []
    for node in status.nodes:
        if node.error is not None:
            hosted = [group for group, nodes in status.members.items() if node.node in nodes] or ["-"]
            rows.extend([node.node, group, *["-"] * (len(_COLUMNS) - 2)] for group in hosted)
            notes.append(f"{node.node}: {node.error}")
        elif not node.groups:
            rows.append([node.node, "(no groups)", *[""] * (len(_COLUMNS) - 2)])
        rows.extend(_row(stats) for stats in node.groups)
    per_node = len(rows)
    many = len(status.nodes) > 1
    if many:
        rows.extend(_row(stats) for stats in status.totals())
    table = _table(rows)
    groups = ", ".join(f"{group} on {_count(len(nodes), 'node')}" for group, nodes in status.members.items())
    lines = [f"{_count(len(status.nodes), 'live node')}; groups: {groups or 'none'}", ""]
    lines += [*table[:per_node], "", *table[per_node:], ""] if many else [*table, ""]
    if many:
        lines.append(f"NODE {ALL_NODES}: each group's totals over the nodes that answered.")
    lines.append("MAILBOX, INBOX: messages waiting now/the most at once. DEAD: dead letters. AVG MS: per handler call.")
    lines.append("DROPPED: by a mailbox's overflow policy. OVERFLOW: refused by a full inbox.")
    lines.extend(notes)
    if status.actors is not None:
        lines += ["", *_actors_table(status.actors)]
    return "\n".join(lines)


def _actors_table(actors: Actors) -> list[str]:
    """A line per live actor: its group, its key, the node(s) that hold it."""
    rows = [["GROUP", "KEY", "NODE"]]
    rows += [[group, key or "-", ",".join(nodes)] for group, by_key in actors.items() for key, nodes in by_key.items()]
    count = len(rows) - 1
    legend = "KEY -: a singleton. A pool's workers are numbered. NODE: two nodes while a key moves."
    return [*_table(rows, left=3), "", f"{_count(count, 'live actor')}. {legend}" if count else "No live actor."]
