"""Older data for the dynamic-memory study: a dataset with each user's most recent interactions held out,
or with a share of its users left out entirely. A model trained on it meets the held-out interactions
only at test time, when they may enter its memory bank without any training.

There are no timestamps in these files, so time is each user's order of interactions. With `last` = h,
every sequence loses its last h items before the leave-one-out protocol applies, so the older data has
its own validation and test items, h places earlier than the full data's. A user whose older sequence
is too short to split is left out of training (the protocol drops it and says how many).

A held-out dataset is named like a dataset with its change after a colon, e.g. "Beauty:last=2" or
"Beauty:users=0.1" (the share of users left out, drawn with a fixed seed), so that every command and
run spec that takes a dataset takes it."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rasekit import settings

USERS_SEED = 0  # the draw of the left-out users: fixed, so that every run leaves out the same users


@dataclass(frozen=True)
class HeldOut:
    last: int = 0        # each user's last `last` interactions held out
    users: float = 0.0   # the share of users left out entirely

    def __post_init__(self):
        settings.integer("last", self.last, 0, 10)
        settings.real("users", self.users, 0, 0.9)

    @classmethod
    def parse(cls, text: str) -> "HeldOut":
        """`last=2` or `users=0.1` (or both, comma-separated), as written after a dataset's name."""
        given = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in ("last", "users") or not value.strip():
                raise settings.SettingsError(f"held-out data {text!r} is not allowed: expected last=<interactions> "
                                             f"and/or users=<share>, e.g. 'last=2' or 'users=0.1'")
            try:
                given[name.strip()] = int(value) if name.strip() == "last" else float(value)
            except ValueError:
                raise settings.SettingsError(f"held-out data {text!r}: {name.strip()}={value.strip()!r} is not a "
                                             f"number") from None
        return cls(**given)

    @property
    def config(self) -> dict:
        """What a run's configuration records (only the changes, so that full data keeps its keys)."""
        return {k: v for k, v in asdict(self).items() if v != getattr(HeldOut(), k)}

    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.config.items())

    def left_out_users(self, users) -> set[int]:
        """The users left out entirely: a seeded draw of the share `users`."""
        users = sorted(users)
        count = int(round(self.users * len(users)))
        return set(np.random.default_rng(USERS_SEED).choice(users, count, replace=False).tolist()) if count else set()

    def apply(self, sequences: dict[int, list[int]]) -> dict[int, list[int]]:
        """The older sequences: left-out users removed, then each user's last `last` items."""
        gone = self.left_out_users(sequences)
        return {u: items[:len(items) - self.last] for u, items in sequences.items() if u not in gone}
