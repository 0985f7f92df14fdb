"""Restart policies: what a supervisor does when a handler raises.

A `RestartPolicy` maps exception types to a directive:

- ``"resume"``: keep the instance; the failed message is dead-lettered.
- ``"restart"``: stop the instance (``on_stop``), wait a backoff, build a new one
  (``__init__``, ``on_start``); the failed message is dead-lettered, the messages
  queued behind it go to the new instance.
- ``"stop"``: stop the instance; what is queued for it is dead-lettered. A keyed
  actor comes back, fresh, on the next message for its key (a virtual actor).

Restarts are bounded: more than ``max_restarts`` within ``within`` seconds
escalates (see docs/supervision.md). Between restarts the supervisor waits
``min(max_backoff, backoff * 2**(attempt-1))``, spread by ``±jitter``.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import anyio

from edabus._exceptions import DefinitionError

__all__ = ["Directive", "RestartPolicy", "RestartWindow"]

Directive = Literal["resume", "restart", "stop"]
_DIRECTIVES = ("resume", "restart", "stop")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a supervisor answers a failing handler; see the module docstring.

    Attributes:
        decide: directive per exception type; the most specific class in the
            exception's MRO wins.
        default: the directive for exceptions ``decide`` does not name.
        max_restarts: restarts allowed within ``within`` seconds before escalating.
        within: the sliding window, in seconds.
        backoff: the first wait before a restart, in seconds; doubles each time.
        max_backoff: the longest wait.
        jitter: each wait is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
        clock: the time source for the window (monotonic seconds); replaceable in tests.
        sleep: how to wait a backoff; replaceable in tests.
        rng: the random source for jitter.

    """

    decide: Mapping[type[BaseException], Directive] = field(default_factory=dict)
    # Orleans and Ray keep an actor whose call raised (the error goes back to the caller);
    # Akka restarts it. Resume is the default here: state survives a business error, and a
    # restart is one `decide` entry away for the failures that may corrupt state.
    default: Directive = "resume"
    max_restarts: int = 3
    within: float = 60.0
    backoff: float = 0.1
    max_backoff: float = 10.0
    jitter: float = 0.2
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        named: list[tuple[object, str]] = [("default", self.default), *self.decide.items()]
        for exc_type, directive in named:
            if directive not in _DIRECTIVES:
                msg = f"RestartPolicy: directive for {exc_type!r} must be one of {_DIRECTIVES}, got {directive!r}"
                raise DefinitionError(msg)
        if self.max_restarts < 0 or self.within <= 0 or self.backoff < 0 or not 0 <= self.jitter < 1:
            msg = "RestartPolicy: max_restarts >= 0, within > 0, backoff >= 0 and 0 <= jitter < 1"
            raise DefinitionError(msg)

    def directive_for(self, exc: BaseException) -> Directive:
        """The directive for an exception: its most specific class named in ``decide``."""
        for klass in type(exc).__mro__:
            directive = self.decide.get(klass)
            if directive is not None:
                return directive
        return self.default

    def delay_for(self, attempt: int) -> float:
        """The wait before restart number ``attempt`` (1-based), jitter included."""
        base = float(min(self.max_backoff, self.backoff * 2 ** max(0, attempt - 1)))
        if self.jitter:
            base *= float(self.rng.uniform(1 - self.jitter, 1 + self.jitter))
        return base


class RestartWindow:
    """The restarts of one actor (or one pool) within a policy's sliding window."""

    __slots__ = ("_policy", "_times")

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        self._times: deque[float] = deque()

    def attempt(self) -> int | None:
        """Record a restart and return its number in the window, or None when the bound is exhausted."""
        now = self._policy.clock()
        times = self._times
        while times and now - times[0] > self._policy.within:
            times.popleft()
        if len(times) >= self._policy.max_restarts:
            return None
        times.append(now)
        return len(times)
