"""Dead letters already on the dead-letter topic: an input read again is not dead-lettered twice.

Why. A restarted worker resumes from the committed offsets, which may lie
behind events it had already handled (``processors.stream_app``: an event is
acked only after the snapshot covering its stream). A bad event among them
was dead-lettered before the crash; rejected again, it would be
dead-lettered again. Monitors skip what they applied by position; a
rejected event touches no monitor, so it needs this ledger, as re-fired
alerts need ``processors.emitted_alerts``.

How. A dead letter is identified by where its input was read and by whom
(``letter_id``: stage, source topic, partition, offset, reason) -- the same
for the same input, whichever worker reads it. A restore reads the tail of
the dead-letter topic (the latest ``TAIL`` records of each partition, in the
same pass as the state and alerts topics) and keeps the ids of the latest
``KEEP`` dead letters per source partition. A dead letter whose id is there
is not produced again (``already_sent`` answers once per id). What can be
read again is the uncommitted window after a partition's committed offset:
its dead letters are the latest ones of that source partition.

Examples
--------
>>> ledger = EmittedDeadLetters()
>>> key = letter_id("monitor", "acme.labels", 1, 42, "invalid_json")
>>> key
'monitor|acme.labels:1@42|invalid_json'
>>> ledger.replace({("acme.labels", 1): [key]})
>>> ledger.already_sent(key), ledger.already_sent(key)
(True, False)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from processors.emitted_alerts import Collect
from schemas.events import DeadLetter

KEEP = 10_000
"""Dead-letter ids kept per source partition: more than an uncommitted window holds."""
TAIL = 50_000
"""Records read from the end of each dead-letter partition at a restore."""

Source = tuple[str, int]


def letter_id(stage: str, topic: str, partition: int | None, offset: int | None,
              reason: str) -> str:
    """What identifies one dead letter: who rejected which input record, and why."""
    return f"{stage}|{topic}:{partition}@{offset}|{reason}"


def id_of(letter: DeadLetter) -> str:
    """``letter_id`` of a dead letter read back from the topic."""
    return letter_id(letter.stage, letter.source_topic, letter.source_partition,
                     letter.source_offset, letter.reason)


def source_of(letter: DeadLetter) -> Source:
    """The input partition a dead letter's record was read from."""
    return letter.source_topic, letter.source_partition or 0


class EmittedDeadLetters:
    """Per source partition, the ids of its latest dead letters on the topic (bounded)."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.ids: set[str] = set()
        self.suppressed = 0

    def collector(self, max_bytes: int) -> tuple[dict[Source, deque[str]], Collect]:
        """A record handler for ``read_to_end`` and the per-source ids it fills."""
        found: dict[Source, deque[str]] = {}
        return found, Collect(found, self.keep, max_bytes, DeadLetter, source_of, id_of)

    def replace(self, found: Mapping[Source, Iterable[str]]) -> None:
        """Take a fresh read of the topic as the ledger (after a restore)."""
        self.ids = {i for ids in found.values() for i in ids}

    def already_sent(self, key: str) -> bool:
        """True (once) if this dead letter is on the topic already: do not produce it again."""
        if key not in self.ids:
            return False
        self.ids.discard(key)
        self.suppressed += 1
        return True


