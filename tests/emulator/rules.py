"""Discord's validation rules: message, embed and component limits, and command payload limits.

Every checker returns a list of (dotted field path, message) problems; `form_error` turns them into
Discord's `400 {code: 50035, "Invalid Form Body"}` body, which nextcord flattens to "In <path>: <msg>".
Sources: discord-api-docs `developers/resources/message.mdx` ("Embed Limits"),
`developers/interactions/application-commands.mdx`, `developers/components/reference.mdx`.
"""

from __future__ import annotations

import re
from typing import Any

Problems = list[tuple[str, str]]

NAME_RE = re.compile(r"^[-_\w]{1,32}$")
COMPONENTS_V2 = 1 << 15
# the only flags a bot may set on an interaction message: SUPPRESS_EMBEDS, EPHEMERAL,
# SUPPRESS_NOTIFICATIONS, IS_COMPONENTS_V2 (receiving-and-responding.mdx, "Messages")
MESSAGE_FLAGS = (1 << 2) | (1 << 6) | (1 << 12) | COMPONENTS_V2
SUB_TYPES = (1, 2)  # SUB_COMMAND, SUB_COMMAND_GROUP
EMBED_TOTAL = 6000


def _text(value: Any) -> str:
    # Discord measures embed texts after trimming whitespace
    return str(value).strip() if value is not None else ""


def _max(problems: Problems, path: str, value: str, limit: int) -> int:
    if len(value) > limit:
        problems.append((path, f"Must be {limit} or fewer in length."))
    return len(value)


def embed_problems(embeds: list[dict[str, Any]], prefix: str) -> Problems:
    problems: Problems = []
    if len(embeds) > 10:
        problems.append((f"{prefix}embeds", "Must be 10 or fewer in length."))
    total = 0
    for i, embed in enumerate(embeds):
        p = f"{prefix}embeds.{i}"
        total += _max(problems, f"{p}.title", _text(embed.get("title")), 256)
        total += _max(problems, f"{p}.description", _text(embed.get("description")), 4096)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems.append((f"{p}.fields", "Must be 25 or fewer in length."))
        for j, fld in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                text = _text(fld.get(key))
                if not text:
                    problems.append((f"{p}.fields.{j}.{key}", "This field is required"))
                total += _max(problems, f"{p}.fields.{j}.{key}", text, limit)
        footer = embed.get("footer") or {}
        total += _max(problems, f"{p}.footer.text", _text(footer.get("text")), 2048)
        author = embed.get("author") or {}
        total += _max(problems, f"{p}.author.name", _text(author.get("name")), 256)
    if total > EMBED_TOTAL:  # summed over every embed of the message
        problems.append((f"{prefix}embeds", f"Embed size exceeds maximum size of {EMBED_TOTAL}"))
    return problems


def component_problems(rows: list[dict[str, Any]], prefix: str) -> Problems:
    """Classic (non components-v2) limits: 5 action rows of 1-5 items, unique custom_ids <= 100 chars."""
    problems: Problems = []
    if len(rows) > 5:
        problems.append((f"{prefix}components", "Must be 5 or fewer in length."))
    seen: set[str] = set()
    for i, row in enumerate(rows):
        p = f"{prefix}components.{i}"
        items = row.get("components") or []
        if row.get("type") != 1 or not 1 <= len(items) <= 5:
            problems.append((p, "An action row must hold 1 to 5 components"))
        for j, item in enumerate(items):
            custom_id = item.get("custom_id")
            if custom_id is None and item.get("style") != 5:  # only link buttons lack a custom_id
                problems.append((f"{p}.components.{j}.custom_id", "This field is required"))
            elif custom_id is not None:
                _max(problems, f"{p}.components.{j}.custom_id", custom_id, 100)
                if custom_id in seen:
                    problems.append((f"{p}.components.{j}.custom_id", "Component custom id cannot be duplicated"))
                seen.add(custom_id)
            _max(problems, f"{p}.components.{j}.label", _text(item.get("label")), 80)
    return problems


def message_problems(body: dict[str, Any], prefix: str = "") -> Problems:
    """Limits for a message create/edit body (content, embeds, components)."""
    problems: Problems = []
    content = body.get("content")
    if content is not None:
        _max(problems, f"{prefix}content", str(content), 2000)
    problems += embed_problems(body.get("embeds") or [], prefix)
    flags = int(body.get("flags") or 0)
    if flags & ~MESSAGE_FLAGS:
        problems.append((f"{prefix}flags", f"Flags {flags & ~MESSAGE_FLAGS} cannot be set by a bot here"))
    if not flags & COMPONENTS_V2:
        problems += component_problems(body.get("components") or [], prefix)
    return problems


def is_empty_message(body: dict[str, Any]) -> bool:
    keys = ("content", "embeds", "components", "attachments", "sticker_ids", "poll")
    return not any(body.get(k) for k in keys)


def _name_problems(problems: Problems, path: str, name: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name) or name != name.lower():
        problems.append((f"{path}.name", "Command name is invalid (1-32 lowercase, ^[-_\\w]{1,32}$)"))


def _description_problems(problems: Problems, path: str, description: Any) -> None:
    if not isinstance(description, str) or not 1 <= len(description) <= 100:
        problems.append((f"{path}.description", "Must be between 1 and 100 in length."))


def option_problems(options: list[dict[str, Any]], path: str) -> Problems:
    problems: Problems = []
    if len(options) > 25:
        problems.append((path, "Must be 25 or fewer in length."))
    kinds = {o.get("type") in SUB_TYPES for o in options}
    if len(kinds) > 1:
        problems.append((path, "Sub-command and sub-command group options cannot be mixed with other options"))
    names = [o.get("name") for o in options]
    if len(set(names)) != len(names):
        problems.append((path, "Option names must be unique"))
    optional_seen = False
    for i, opt in enumerate(options):
        p = f"{path}.{i}"
        _name_problems(problems, p, opt.get("name"))
        _description_problems(problems, p, opt.get("description"))
        if opt.get("type") not in range(1, 12):
            problems.append((f"{p}.type", "Value must be one of 1..11."))
        if opt.get("required"):
            if optional_seen:
                problems.append((f"{p}.required", "Required options must be placed before non-required options"))
        elif opt.get("type") not in SUB_TYPES:
            optional_seen = True
        choices = opt.get("choices") or []
        if len(choices) > 25:
            problems.append((f"{p}.choices", "Must be 25 or fewer in length."))
        for j, choice in enumerate(choices):
            if not 1 <= len(str(choice.get("name", ""))) <= 100:
                problems.append((f"{p}.choices.{j}.name", "Must be between 1 and 100 in length."))
            if isinstance(choice.get("value"), str) and len(choice["value"]) > 100:
                problems.append((f"{p}.choices.{j}.value", "Must be 100 or fewer in length."))
        if opt.get("type") in SUB_TYPES:
            problems += option_problems(opt.get("options") or [], f"{p}.options")
    return problems


def command_problems(command: dict[str, Any]) -> Problems:
    problems: Problems = []
    if command.get("type", 1) == 1:  # CHAT_INPUT; user/message commands have free-form names
        _name_problems(problems, "", command.get("name"))
        _description_problems(problems, "", command.get("description"))
    elif not 1 <= len(str(command.get("name") or "")) <= 32:
        problems.append((".name", "Must be between 1 and 32 in length."))
    problems += option_problems(command.get("options") or [], "options")
    return [(p.lstrip("."), m) for p, m in problems]


def form_error(problems: Problems) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    for path, message in problems:
        node = errors
        for part in filter(None, path.split(".")):
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": "INVALID_FORM_BODY", "message": message})
    return {"code": 50035, "message": "Invalid Form Body", "errors": errors}
