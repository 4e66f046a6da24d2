"""The people escalations reach, and resolving a step's recipients to deliveries.

A person belongs to one dealership (or to all, ``dealership=None``), holds roles, and has an
address per channel. In-app notifications need no address: a person's key is their inbox.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from leadwatch.core.policy import Channel, Delivery, RecipientRef


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    name: str
    roles: frozenset[str] = frozenset()
    dealership: str | None = None
    addresses: Mapping[Channel, str] = field(default_factory=dict)
    active: bool = True

    def address(self, channel: Channel) -> str | None:
        if channel is Channel.IN_APP:
            return self.key
        return self.addresses.get(channel) or None


class Directory:
    """Look-ups by key, by rep name and by role, indexed once (decisions run in hot loops)."""

    def __init__(self, people: Iterable[Person] = ()) -> None:
        self.people = tuple(p for p in people if p.active)
        self._by_key = {p.key: p for p in self.people}
        # Resolutions are pure functions of their arguments and this (immutable) directory.
        self._memo: dict[tuple[object, ...], tuple[tuple[Delivery, ...], tuple[str, ...]]] = {}
        self._by_name: dict[str, list[Person]] = defaultdict(list)
        self._by_role: dict[str, list[Person]] = defaultdict(list)
        for person in self.people:
            self._by_name[person.name.casefold()].append(person)
            for role in person.roles:
                self._by_role[role].append(person)

    def person(self, key: str) -> Person | None:
        return self._by_key.get(key)

    def resolve(
        self, ref: RecipientRef, *, dealership: str, rep: str | None
    ) -> tuple[list[Person], str]:
        """The people ``ref`` means for a lead of ``dealership``, and a note when nobody."""
        if ref.kind == "person":
            person = self._by_key.get(ref.name)
            return ([person], "") if person else ([], f"no active person {ref.name!r}")
        if ref.kind == "rep":
            if not rep:
                return [], "the lead has no assigned rep"
            found = [p for p in self._by_name.get(rep.casefold(), ()) if _serves(p, dealership)]
            return found, "" if found else f"rep {rep!r} is not in the directory"
        found = [p for p in self._by_role.get(ref.name, ()) if _serves(p, dealership)]
        return found, "" if found else f"nobody holds role {ref.name} at {dealership}"

    def deliveries(
        self,
        refs: Iterable[RecipientRef],
        channels: Iterable[Channel],
        *,
        dealership: str,
        rep: str | None,
    ) -> tuple[tuple[Delivery, ...], list[str]]:
        """Every (person, channel) pair with an address, without repeats, and the notes on
        who could not be reached."""
        key = (tuple(refs), tuple(channels), dealership, rep)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= 50_000:
                self._memo.clear()
            delivered, notes = self._resolve_all(key[0], key[1], dealership=dealership, rep=rep)
            found = self._memo[key] = (delivered, tuple(notes))
        return found[0], list(found[1])

    def _resolve_all(
        self,
        refs: tuple[RecipientRef, ...],
        wanted: tuple[Channel, ...],
        *,
        dealership: str,
        rep: str | None,
    ) -> tuple[tuple[Delivery, ...], list[str]]:
        out: dict[tuple[str, Channel], Delivery] = {}
        notes: list[str] = []
        for ref in refs:
            people, note = self.resolve(ref, dealership=dealership, rep=rep)
            if note:
                notes.append(note)
            for person in people:
                reached = False
                for channel in wanted:
                    address = person.address(channel)
                    if address:
                        reached = True
                        out.setdefault(
                            (person.key, channel),
                            Delivery(person.key, person.name, channel, address),
                        )
                if not reached:
                    notes.append(
                        f"{person.name} has no address for {'/'.join(c.value for c in wanted)}"
                    )
        return tuple(out.values()), list(dict.fromkeys(notes))  # one note per person


def _serves(person: Person, dealership: str) -> bool:
    return person.dealership is None or person.dealership.casefold() == dealership.casefold()
