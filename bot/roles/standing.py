"""A member's standing from their position (docs/domain.md, "Roles and alerts"): which of the community's
roles they hold and what changed for them. Pure: no store, no Discord."""

from __future__ import annotations

from dataclasses import dataclass

from backends.protocol import Community
from backends.roles import RoleConfig

# The parts of a standing, stored '+'-joined: naib (a seat holder), fedaykin (1..F, the eligible set),
# at_risk (R+1..F), waiting (F+1..W), head (F+1, the head of the waiting pool). None of them: "none".
NONE = "none"


def standing_of(
    position: int | None, community: Community, eligible: bool = True, seated: bool = False
) -> frozenset[str]:
    """What `position` gives, and `naib` to a seat holder (docs/domain.md, "Naib seats": seats, not
    positions 1..N); a member who fails the community's eligibility rule (its minimum balance) holds no
    part at all, the waiting pool included."""
    if position is None or not eligible:
        return frozenset()  # below the minimum balance: outside the eligible set and the waiting pool
    parts = set()
    if position <= community.fedaykin:
        parts.add("fedaykin")
        if seated:  # every seat holder is in the eligible set; one read a moment apart from it is not
            parts.add("naib")
        if position > community.at_risk:
            parts.add("at_risk")
    elif community.fedaykin < position <= community.waitlist_end:
        parts.add("waiting")
        if position == community.fedaykin + 1:
            parts.add("head")
    return frozenset(parts)


def encode(parts: frozenset[str]) -> str:
    return "+".join(sorted(parts)) or NONE


def decode(status: str) -> frozenset[str]:
    return frozenset() if status == NONE else frozenset(status.split("+"))


def roles_for(parts: frozenset[str], config: RoleConfig) -> frozenset[int]:
    """The configured roles of the parts (head has no role of its own)."""
    return frozenset(r for part in parts if part != "head" and (r := config.role(part)) is not None)


@dataclass(frozen=True)
class Alert:
    """One DM's worth of news for a member; `urgent` ones (lost eligibility) ignore the daily limit."""

    discord_user_id: int
    events: tuple[str, ...]
    position: int | None

    @property
    def urgent(self) -> bool:
        return "lost_eligibility" in self.events


def events_between(before: frozenset[str], after: frozenset[str]) -> tuple[str, ...]:
    """The changes members are told about, in the order a DM lists them."""
    events = []
    if "fedaykin" in after and "fedaykin" not in before:
        events.append("entered")
    if "fedaykin" in before and "fedaykin" not in after:
        events.append("lost_eligibility")
    if "naib" in after and "naib" not in before:
        events.append("gained_naib")
    if "naib" in before and "naib" not in after:
        events.append("lost_naib")
    if "at_risk" in after and "at_risk" not in before:
        events.append("at_risk")
    if "head" in after and "head" not in before:
        events.append("head_of_waiting_pool")
    return tuple(events)
