"""Tests of the Discord emulator itself, driven by the real nextcord client and a throwaway bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import nextcord
import pytest
import pytest_asyncio
from nextcord.ext import commands

from tests.emulator import DiscordEmulator, Member

GUILD_ID = 1100000000000000100
T = TypeVar("T")


class Pager(nextcord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)

    @nextcord.ui.button(label="Next", custom_id="pager:next")
    async def next_page(self, button: nextcord.ui.Button, interaction: nextcord.Interaction) -> None:
        button.disabled = True
        await interaction.response.edit_message(content="page 2", view=self)


class Throwaway(commands.Cog):
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors

    @nextcord.slash_command(name="ping", description="Reply with an embed")
    async def ping(self, interaction: nextcord.Interaction) -> None:
        embed = nextcord.Embed(title="Pong", description="Still here", colour=0x2ECC71)
        embed.add_field(name="Latency", value="1 ms", inline=True)
        embed.set_footer(text="emulated")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @nextcord.slash_command(name="slow", description="Answer too late")
    async def slow(self, interaction: nextcord.Interaction) -> None:
        await asyncio.sleep(0.6)
        await interaction.response.send_message("late")

    @nextcord.slash_command(name="twice", description="Answer twice, racing itself")
    async def twice(self, interaction: nextcord.Interaction) -> None:
        # both calls pass nextcord's local `is_done()` guard before either response has returned
        await asyncio.gather(interaction.response.send_message("one"), interaction.response.send_message("two"))

    @nextcord.slash_command(name="leaderboard", description="Boards")
    async def leaderboard(self, interaction: nextcord.Interaction) -> None:
        pass

    @leaderboard.subcommand(name="conviction", description="Conviction board")
    async def conviction(
        self,
        interaction: nextcord.Interaction,
        page: int = nextcord.SlashOption(description="Page", required=False, min_value=1, default=1),
    ) -> None:
        await interaction.response.send_message(f"conviction page={page!r} {type(page).__name__}")

    @nextcord.slash_command(name="admin", description="Manage Server only", default_member_permissions=32)
    async def admin(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message(f"admin ok {interaction.permissions.manage_guild}")

    @nextcord.slash_command(name="huge", description="Send an over-long embed")
    async def huge(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message(embed=nextcord.Embed(description="x" * 5000))

    @nextcord.slash_command(name="pager", description="Send a button")
    async def pager(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message("page 1", view=Pager())

    @nextcord.slash_command(name="later", description="Defer, then follow up")
    async def later(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await asyncio.sleep(0.05)
        await interaction.followup.send("done later", ephemeral=True)
        await interaction.followup.send("second message")

    @nextcord.slash_command(name="stale", description="Defer, then edit too late")
    async def stale(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()
        await asyncio.sleep(0.3)
        await interaction.edit_original_message(content="too late")


COMMAND_NAMES = {"ping", "slow", "twice", "leaderboard", "admin", "huge", "pager", "later", "stale"}


@dataclass
class Harness:
    emulator: DiscordEmulator
    bot: commands.Bot
    task: asyncio.Task[None]
    alice: Member
    errors: list[BaseException] = field(default_factory=list)

    async def watch(self, awaitable: Awaitable[T], timeout: float = 10) -> T:
        """Await `awaitable` while watching the bot's start task, so a crashed login fails fast."""
        job = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({job, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if job not in done:
            job.cancel()
            if self.task in done:
                self.task.result()
                raise AssertionError("bot stopped")
            raise TimeoutError(f"timed out after {timeout}s")
        return job.result()

    def error_codes(self) -> list[int | None]:
        return [getattr(getattr(e, "original", e), "code", None) for e in self.errors]


async def start_bot(emulator: DiscordEmulator) -> Harness:
    bot = commands.Bot(intents=nextcord.Intents(guilds=True), guild_ready_timeout=0.05)
    alice = emulator.member(1100000000000000200, "alice")
    harness = Harness(emulator, bot, asyncio.create_task(bot.start(emulator.token)), alice)
    bot.add_cog(Throwaway(harness.errors))

    @bot.event
    async def on_application_command_error(interaction: nextcord.Interaction, error: Exception) -> None:
        harness.errors.append(error)

    await harness.watch(bot.wait_until_ready())
    await harness.watch(emulator.wait_for_commands(COMMAND_NAMES))
    return harness


async def stop_bot(harness: Harness) -> None:
    await harness.bot.close()
    await asyncio.wait_for(harness.task, 5)


@pytest_asyncio.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    emulator = DiscordEmulator()
    await emulator.start()
    monkeypatch.setattr(nextcord.http.Route, "BASE", emulator.base_url)
    emulator.add_guild(GUILD_ID, "Arrakis")
    h = await start_bot(emulator)
    try:
        yield h
    finally:
        await stop_bot(h)
        await emulator.stop()


@pytest.mark.asyncio
async def test_login_and_sync_registers_commands_with_echoed_payloads(harness: Harness) -> None:
    emu, bot = harness.emulator, harness.bot
    assert emu.identifies[0]["intents"] == 1
    assert set(emu.commands) == COMMAND_NAMES
    assert bot.get_guild(GUILD_ID) is not None and bot.get_guild(GUILD_ID).name == "Arrakis"
    for command in bot.get_all_application_commands():
        stored = emu.commands[command.name]
        local = command.get_payload(None)
        assert {k: v for k, v in stored.items() if k not in ("id", "application_id", "version")} == local
        assert command.command_ids[None] == int(stored["id"])
    assert emu.commands["admin"]["default_member_permissions"] == "32"
    emu.add_guild(GUILD_ID + 1, "Giedi Prime")  # after connect: dispatched live as GUILD_CREATE
    await harness.watch(_until(lambda: bot.get_guild(GUILD_ID + 1)))
    posts = [r for r in emu.requests if r[0] == "POST" and r[1].endswith("/commands")]
    assert len(posts) == len(COMMAND_NAMES)

    # a second start against the same registry re-uses every command: nothing is re-posted or deleted
    await stop_bot(harness)
    emu.identify_interval = 0  # restarted at once: on Discord this IDENTIFY would wait 5 s (test_emulator_gateway)
    before = len(emu.requests)
    second = await start_bot(emu)
    harness.task = second.task
    harness.bot = second.bot
    changes = [r for r in emu.requests[before:] if r[0] in ("POST", "DELETE", "PATCH", "PUT")]
    assert changes == []
    assert emu.unknown_routes == [] and emu.violations == []


@pytest.mark.asyncio
async def test_embed_reply_arrives_with_title_colour_fields_and_ephemeral_flag(harness: Harness) -> None:
    emu = harness.emulator
    inter = emu.invoke("ping", guild_id=GUILD_ID, user=harness.alice)
    message = await inter.done()
    assert inter.callback_types == [4] and not inter.deferred
    assert message.ephemeral and message.flags & 64
    (embed,) = message.embeds
    assert embed["title"] == "Pong" and embed["color"] == 0x2ECC71
    assert embed["fields"] == [{"name": "Latency", "value": "1 ms", "inline": True}]
    assert embed["footer"]["text"] == "emulated"
    assert inter.responded_at is not None and 0 <= inter.responded_at < 1
    bob = emu.member(1100000000000000203, "bob")
    with pytest.raises(PermissionError):  # nobody else sees (or clicks) an ephemeral message
        emu.click(message, "anything", guild_id=GUILD_ID, user=bob)
    assert emu.violations == [] and emu.unknown_routes == [] and harness.errors == []


@pytest.mark.asyncio
async def test_subcommand_with_int_option_is_parsed(harness: Harness) -> None:
    emu = harness.emulator
    message = await emu.invoke("leaderboard", "conviction", page=2, guild_id=GUILD_ID, user=harness.alice).done()
    assert message.content == "conviction page=2 int"
    message = await emu.invoke("leaderboard", "conviction", guild_id=GUILD_ID, user=harness.alice).done()
    assert message.content == "conviction page=1 int"
    with pytest.raises(ValueError):
        emu.invoke("leaderboard", "conviction", page=0, guild_id=GUILD_ID, user=harness.alice)
    with pytest.raises(ValueError):
        emu.invoke("leaderboard", guild_id=GUILD_ID, user=harness.alice)
    with pytest.raises(LookupError):
        emu.invoke("nope", guild_id=GUILD_ID, user=harness.alice)
    assert emu.violations == [] and emu.unknown_routes == [] and harness.errors == []


@pytest.mark.asyncio
async def test_late_first_response_is_a_violation_and_the_bot_gets_404(harness: Harness) -> None:
    emu = harness.emulator
    emu.response_deadline = 0.3
    inter = emu.invoke("slow", guild_id=GUILD_ID, user=harness.alice)
    await harness.watch(_until(lambda: harness.errors))
    with pytest.raises(TimeoutError, match="10062"):
        await inter.done(timeout=0.01)
    assert inter.responded_at is not None and inter.responded_at > 0.3
    assert inter.rejections == [(404, 10062)]
    assert len(emu.violations) == 1 and "deadline" in emu.violations[0]
    (error,) = harness.errors
    assert isinstance(error.original, nextcord.NotFound) and error.original.code == 10062


@pytest.mark.asyncio
async def test_double_answer_is_refused_and_recorded(harness: Harness) -> None:
    emu = harness.emulator
    inter = emu.invoke("twice", guild_id=GUILD_ID, user=harness.alice)
    message = await inter.done()
    await harness.watch(_until(lambda: harness.errors))
    assert message.content == "one"
    assert inter.callback_types == [4, 4] and inter.rejections == [(400, 40060)]
    assert any("already been acknowledged" in v for v in emu.violations)
    assert harness.error_codes() == [40060]


@pytest.mark.asyncio
async def test_over_long_embed_is_rejected_with_50035(harness: Harness) -> None:
    emu = harness.emulator
    inter = emu.invoke("huge", guild_id=GUILD_ID, user=harness.alice)
    await harness.watch(_until(lambda: harness.errors))
    assert inter.original is None and inter.rejections == [(400, 50035)]
    assert harness.error_codes() == [50035]
    assert "embeds.0.description" in str(harness.errors[0].original)
    assert any("embeds.0.description" in v for v in emu.violations)


@pytest.mark.asyncio
async def test_permission_gated_command(harness: Harness) -> None:
    emu = harness.emulator
    with pytest.raises(PermissionError):
        emu.invoke("admin", guild_id=GUILD_ID, user=harness.alice)
    manager = emu.member(1100000000000000201, "manager", permissions=32)
    message = await emu.invoke("admin", guild_id=GUILD_ID, user=manager).done()
    assert message.content == "admin ok True"
    admin = emu.member(1100000000000000202, "root", permissions=8)
    # Discord computes ALL permissions for an administrator, so the run-time check passes too
    assert (await emu.invoke("admin", guild_id=GUILD_ID, user=admin).done()).content == "admin ok True"
    # the role behind the permission bits reached nextcord's guild cache too
    guild = harness.bot.get_guild(GUILD_ID)
    assert guild is not None and guild.get_role(manager.roles[0]).permissions.manage_guild
    assert emu.violations == [] and harness.errors == []


@pytest.mark.asyncio
async def test_button_click_round_trip_updates_the_message(harness: Harness) -> None:
    emu = harness.emulator
    message = await emu.invoke("pager", guild_id=GUILD_ID, user=harness.alice).done()
    assert message.content == "page 1"
    button = message.components[0]["components"][0]
    assert button["custom_id"] == "pager:next" and not button.get("disabled")
    click = emu.click(message, "pager:next", guild_id=GUILD_ID, user=harness.alice)
    updated = await click.done()
    assert click.callback_types == [7] and updated is message
    assert updated.content == "page 2" and updated.components[0]["components"][0]["disabled"] is True
    with pytest.raises(ValueError, match="disabled"):
        emu.click(message, "pager:next", guild_id=GUILD_ID, user=harness.alice)
    assert emu.violations == [] and emu.unknown_routes == [] and harness.errors == []


@pytest.mark.asyncio
async def test_followup_after_defer_edits_the_loading_message(harness: Harness) -> None:
    emu = harness.emulator
    inter = emu.invoke("later", guild_id=GUILD_ID, user=harness.alice)
    message = await inter.done()
    await harness.watch(_until(lambda: inter.followups))
    assert inter.deferred and inter.callback_types == [5]
    assert message.content == "done later" and message.ephemeral and not message.flags & 128
    (second,) = inter.followups
    assert second.content == "second message" and not second.ephemeral
    assert emu.violations == [] and harness.errors == []


@pytest.mark.asyncio
async def test_webhook_after_token_lifetime_gets_401(harness: Harness) -> None:
    emu = harness.emulator
    emu.token_lifetime = 0.2
    inter = emu.invoke("stale", guild_id=GUILD_ID, user=harness.alice)
    await harness.watch(_until(lambda: harness.errors))
    assert inter.rejections == [(401, 50027)] and harness.error_codes() == [50027]
    assert any("15 min" in v for v in emu.violations)


@pytest.mark.asyncio
async def test_callback_types_and_defer_flags_are_checked(harness: Harness) -> None:
    emu = harness.emulator
    inter = emu.invoke("slow", guild_id=GUILD_ID, user=harness.alice)  # the bot answers only after 0.6 s
    url = f"{emu.base_url}/interactions/{inter.id}/{inter.token}/callback"
    async with aiohttp.ClientSession() as http:
        for body, status in (
            ({"type": 7, "data": {"content": "x"}}, 400),  # UPDATE_MESSAGE is for components only
            ({"type": 1}, 400),  # PONG is not an interaction response here
            ({"type": 5, "data": {"flags": 64 | 4}}, 400),  # a defer may only carry EPHEMERAL
            ({"type": 5, "data": {"flags": 64}}, 204),
        ):
            async with http.post(url, json=body) as response:
                assert response.status == status, body
                if status == 400:
                    assert response.headers["Content-Type"] == "application/json"
                    assert (await response.json())["code"] == 50035
    assert inter.callback_types == [7, 1, 5, 5] and inter.deferred and inter.original is not None
    assert inter.original.ephemeral and inter.original.flags & 128  # still "thinking"
    await harness.watch(_until(lambda: harness.errors))
    assert harness.error_codes() == [40060]  # the bot's own late answer came second
    assert inter.rejections == [(400, 50035)] * 3 + [(400, 40060)]


@pytest.mark.asyncio
async def test_command_registration_is_validated() -> None:
    emu = DiscordEmulator()
    await emu.start()
    url = f"{emu.base_url}/applications/{emu.app_id}/commands"
    option = {"type": 3, "name": "opt", "description": "An option"}
    bad = [
        {"type": 1, "name": "Ping", "description": "upper case"},
        {"type": 1, "name": "x" * 33, "description": "too long"},
        {"type": 1, "name": "ping", "description": ""},
        {"type": 1, "name": "ping", "description": "d" * 101},
        {"type": 1, "name": "ping", "description": "many", "options": [option] * 26},
        {
            "type": 1,
            "name": "ping",
            "description": "order",
            "options": [option, {**option, "name": "req", "required": True}],
        },
        {
            "type": 1,
            "name": "ping",
            "description": "choices",
            "options": [{**option, "choices": [{"name": str(i), "value": str(i)} for i in range(26)]}],
        },
    ]
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emu.token}"}) as http:
            for body in bad:
                async with http.post(url, json=body) as response:
                    assert response.status == 400, body
                    assert (await response.json())["code"] == 50035
            good = {"type": 1, "name": "ping-2", "description": "ok", "options": [option]}
            async with http.post(url, json=good) as response:
                assert response.status == 201
                assert {k: v for k, v in (await response.json()).items() if k in good} == good
            async with http.post(url, json=good) as response:
                assert response.status == 200  # upsert by name
            async with http.get(f"{emu.base_url}/oauth2/applications/@me") as response:
                assert response.status == 404
            async with http.get(f"{emu.base_url}/users/@me", headers={"Authorization": "Bot x"}) as r:
                assert r.status == 401
    finally:
        await emu.stop()
    assert len(emu.violations) == len(bad) and list(emu.commands) == ["ping-2"]
    assert emu.unknown_routes == ["GET /api/v10/oauth2/applications/@me"]


async def _until(predicate: Any, timeout: float = 3) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)
