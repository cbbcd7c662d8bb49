"""`sietch scores apply` remembers the members a file named: each is looked up once per file, a member not
found is looked up again, and guilds never share what is remembered."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID, uuid4

from bot.cli.score_commands import _Remembered


class Directory:
    """Stands in for the member table: records every lookup."""

    def __init__(self, members: dict[tuple[int, int | str], UUID]) -> None:
        self.known = members
        self.asked: list[tuple[int, set[int], set[str]]] = []

    async def token_matches(self, community_id: int, token: str) -> bool:
        return False

    async def take_request(self, community_id: int, per_minute: int) -> float:
        return 0.0

    async def members(
        self, community_id: int, user_ids: Iterable[int], wallets: Iterable[str]
    ) -> tuple[dict[int, UUID], dict[str, UUID]]:
        users, addresses = set(user_ids), set(wallets)
        self.asked.append((community_id, users, addresses))
        return (
            {u: p for u in users if (p := self.known.get((community_id, u))) is not None},
            {w: p for w in addresses if (p := self.known.get((community_id, w))) is not None},
        )


async def test_a_member_is_looked_up_once_per_file_and_guilds_do_not_share() -> None:
    a, b, w = uuid4(), uuid4(), uuid4()
    directory = Directory({(1, 10): a, (1, 11): b, (1, "0xw"): w, (2, 10): uuid4()})
    remembered = _Remembered(directory)

    assert await remembered.members(1, [10, 12], ["0xw"]) == ({10: a}, {"0xw": w})
    assert await remembered.members(1, [10, 11, 12], ["0xw"]) == ({10: a, 11: b}, {"0xw": w})
    other = await remembered.members(2, [10], [])

    assert directory.asked == [(1, {10, 12}, {"0xw"}), (1, {11, 12}, set()), (2, {10}, set())]
    assert other[0][10] != a  # guild 2's member 10 is another profile
