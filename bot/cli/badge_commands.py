"""`sietch badges award|revoke GUILD USER TYPE [--reason TEXT]`: one badge change through the feed's path
(source of truth, then the outbox to every copy). USER is a Discord id or a 0x wallet. An award of a type
the member holds, or a revocation of one they do not, changes nothing and says so; an unknown type, guild
or member is an error (exit 1) that writes nothing."""

from __future__ import annotations

import argparse
from typing import Any

from backends.protocol import badge_reason_problem, badge_type_problem
from bot.app.app import App
from bot.cli.arguments import snowflake
from bot.cli.errors import CliError
from bot.feed.badges import BadgeItem, parse_member

DONE = {"award": "awarded {type} to {user}", "revoke": "revoked {type} from {user}"}
UNCHANGED = {"award": "{user} already holds {type}", "revoke": "{user} does not hold {type}"}


def add_parser(sub: Any) -> None:
    badges = sub.add_parser("badges", help="award or revoke a member's badge")
    verbs = badges.add_subparsers(required=True, metavar="ACTION")
    for action, help_text in (("award", "give a member a badge"), ("revoke", "take a member's badge back")):
        verb = verbs.add_parser(action, help=help_text)
        verb.add_argument("guild", type=snowflake)
        verb.add_argument("user", help="the member: a Discord id or a 0x wallet")
        verb.add_argument("type", help="the badge type (og, veteran, elder, water_sharer, ...)")
        verb.add_argument("--reason", help="one line, at most 200 characters; kept, never shown to members")
        verb.set_defaults(handler=cmd_badge, action=action)


async def cmd_badge(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    problem = badge_type_problem(args.type) or badge_reason_problem(args.reason)
    if problem:
        raise CliError(problem)
    try:
        user_id, wallet = parse_member(args.user)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    item = BadgeItem(user_id, wallet, args.action, args.type, args.reason)
    async with App.open(settings) as app:
        if await app.copy_source.community(args.guild) is None:
            raise CliError(f"guild {args.guild} is not a configured community (see `sietch community`)")
        changes, problems = await app.badge_feed.resolve(args.guild, [(0, item)])
        if problems:
            raise CliError(problems[0].message)
        outcome = await app.badge_feed.write(args.guild, changes)
    said = DONE if outcome.changed[0] else UNCHANGED
    print(said[args.action].format(type=args.type, user=args.user))
