"""Interaction REST routes: the initial callback, @original edits and follow-ups, with Discord's rules.

Rules (discord-api-docs `developers/interactions/receiving-and-responding.mdx`): the first response must
come within 3 s (else the token is invalidated: 10062, and the interaction is a violation as soon as the
3 s pass, answered or not later), only once (40060), tokens live 15 minutes (50027),
a type 5 defer may only carry EPHEMERAL, and a follow-up sent right after a defer edits the loading message.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .models import EPHEMERAL, LOADING, Interaction, Message
from .rules import Problems, form_error, is_empty_message, message_problems

COMPONENT = 3
CALLBACK_TYPES = {4, 5, 6, 7, 8, 9}
COMPONENT_ONLY = {6, 7}
AUTOCOMPLETE_ONLY = {8}


def json_response(data: Any, status: int = 200) -> web.Response:
    # exactly "application/json": nextcord ignores JSON bodies with "; charset=utf-8" (http.py json_or_text)
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def error_response(status: int, code: int, message: str) -> web.Response:
    return json_response({"message": message, "code": code}, status)


def server_error(status: int) -> web.Response:
    """A 5xx as Discord's edge gives it: JSON for a 500 from the API, plain text from the proxies."""
    if status == 500:
        return error_response(500, 0, "500: Internal Server Error")
    reasons = {502: "502 Bad Gateway", 503: "503 Service Unavailable", 504: "504 Gateway Time-out"}
    return web.Response(status=status, text=reasons.get(status, f"{status} Server Error"))


async def read_body(request: web.Request) -> dict[str, Any]:
    """JSON body, or the `payload_json` part of a multipart upload (messages with files)."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        data: dict[str, Any] = json.loads(str(form.get("payload_json") or "{}"))
        return data
    data = await request.json() if request.can_read_body else {}
    return data


class InteractionRoutes:
    """Mixin for DiscordEmulator; relies on its interaction registry and settings."""

    interactions: dict[int, Interaction]
    violations: list[str]
    callback_failures: list[int]
    response_deadline: float
    token_lifetime: float
    app_id: int

    def _now(self) -> float:
        raise NotImplementedError  # provided by DiscordEmulator

    def _new_message(self, inter: Interaction, body: dict[str, Any], type_: int) -> Message:
        raise NotImplementedError  # provided by DiscordEmulator

    def _violate(self, inter: Interaction, text: str) -> None:
        line = f"interaction {inter.id} ({inter.name!r}): {text}"
        inter.violations.append(line)
        self.violations.append(line)

    def _reject(self, inter: Interaction, status: int, code: int, message: str, why: str) -> web.Response:
        inter.rejections.append((status, code))
        self._violate(inter, f"{why} -> {status} {code} {message}")
        return error_response(status, code, message)

    def _invalid(self, inter: Interaction, problems: Problems) -> web.Response:
        inter.rejections.append((400, 50035))
        self._violate(inter, "invalid form body: " + "; ".join(f"{p}: {m}" for p, m in problems))
        return json_response(form_error(problems), 400)

    async def _callback(self, request: web.Request) -> web.Response:
        inter = self.interactions.get(int(request.match_info["iid"]))
        if inter is None or inter.token != request.match_info["token"]:
            return error_response(404, 10062, "Unknown interaction")
        body = await read_body(request)
        kind, data = int(body.get("type") or 0), body.get("data") or {}
        elapsed = self._now() - inter.dispatched_at
        inter.callback_types.append(kind)
        if inter.responded_at is None:
            inter.responded_at = elapsed
        if self.callback_failures:  # Discord's side failed: nothing is applied, the client may retry
            status = self.callback_failures.pop(0)
            inter.rejections.append((status, 0))
            return server_error(status)
        if inter.ack_type is not None:
            return self._reject(
                inter, 400, 40060, "Interaction has already been acknowledged", "second initial response"
            )
        if elapsed > self.response_deadline:
            why = f"first response after {elapsed:.2f}s (deadline {self.response_deadline}s)"
            if inter.expired:  # the missed deadline is recorded already
                inter.rejections.append((404, 10062))
                return error_response(404, 10062, "Unknown interaction")
            inter.expired = True
            return self._reject(inter, 404, 10062, "Unknown interaction", why)
        problems: Problems = []
        if (
            kind not in CALLBACK_TYPES
            or (kind in COMPONENT_ONLY and inter.type != COMPONENT)
            or (kind in AUTOCOMPLETE_ONLY and inter.type != 4)
        ):
            problems.append(
                ("type", f"Interaction callback type {kind} is not valid for interaction type {inter.type}")
            )
        elif kind == 5 and int(data.get("flags") or 0) & ~EPHEMERAL:
            problems.append(("data.flags", "A deferred response may only set the EPHEMERAL flag"))
        elif kind in (4, 7):
            problems += message_problems(data, "data.")
        if problems:
            return self._invalid(inter, problems)
        if kind == 4 and is_empty_message(data):
            return self._reject(inter, 400, 50006, "Cannot send an empty message", "empty response")
        self._acknowledge(inter, kind, data)
        return web.Response(status=204)

    def _acknowledge(self, inter: Interaction, kind: int, data: dict[str, Any]) -> None:
        inter.ack_type = kind
        inter.deferred = kind in (5, 6)
        if kind == 4:
            inter.original = self._new_message(inter, data, 20 if inter.type == 2 else 0)
            inter._visible.set()
        elif kind == 5:
            flags = (int(data.get("flags") or 0) & EPHEMERAL) | LOADING
            inter.original = self._new_message(inter, {"flags": flags}, 20 if inter.type == 2 else 0)
            inter.loading = True
        elif kind in (6, 7):  # @original is now the clicked message
            inter.original = inter.source
            if kind == 7:
                assert inter.source is not None
                self._check_ephemeral_kept(inter, inter.source, data)
                inter.source.apply(data)
                inter._visible.set()

    def _check_ephemeral_kept(self, inter: Interaction, message: Message, body: dict[str, Any]) -> None:
        if "flags" in body and bool(int(body["flags"] or 0) & EPHEMERAL) != message.ephemeral:
            self._violate(
                inter,
                f"tried to change ephemeral to {not message.ephemeral} after the first response (ignored)",
            )

    def _webhook_interaction(self, request: web.Request) -> Interaction | web.Response:
        token = request.match_info["token"]
        inter = next((i for i in self.interactions.values() if i.token == token), None)
        if inter is None or int(request.match_info["app"]) != self.app_id:
            return error_response(404, 10015, "Unknown Webhook")
        if self._now() - inter.dispatched_at > self.token_lifetime:
            return self._reject(
                inter, 401, 50027, "Invalid Webhook Token", "webhook call after the 15 min token lifetime"
            )
        if inter.ack_type is None:
            return self._reject(
                inter, 404, 10015, "Unknown Webhook", "webhook call before the interaction was acknowledged"
            )
        return inter

    def _target(self, inter: Interaction, message_id: str) -> Message | None:
        candidates = ([inter.original] if inter.original else []) + inter.followups
        if message_id == "@original":
            found = inter.original
        else:
            found = next((m for m in candidates if str(m.id) == message_id), None)
        return None if found is None or found.deleted else found

    async def _message_route(self, request: web.Request) -> web.Response:
        """GET / PATCH / DELETE /webhooks/{app}/{token}/messages/{@original|id}."""
        inter = self._webhook_interaction(request)
        if isinstance(inter, web.Response):
            return inter
        message = self._target(inter, request.match_info["mid"])
        if message is None:
            return self._reject(inter, 404, 10008, "Unknown Message", f"{request.method} of a missing message")
        if request.method == "GET":
            return json_response(message.payload())
        if request.method == "DELETE":
            message.deleted = True
            return web.Response(status=204)
        body = await read_body(request)
        problems = message_problems(body)
        if problems:
            return self._invalid(inter, problems)
        self._check_ephemeral_kept(inter, message, body)
        message.apply(body)
        if message is inter.original:
            inter.loading = False
            inter._visible.set()
        return json_response(message.payload())

    async def _followup(self, request: web.Request) -> web.Response:
        """POST /webhooks/{app}/{token}: a follow-up message (nextcord always sends ?wait=1)."""
        inter = self._webhook_interaction(request)
        if isinstance(inter, web.Response):
            return inter
        body = await read_body(request)
        problems = message_problems(body)
        if problems:
            return self._invalid(inter, problems)
        if is_empty_message(body):
            return self._reject(inter, 400, 50006, "Cannot send an empty message", "empty follow-up")
        if inter.loading and inter.original is not None:
            # a follow-up right after a defer edits the loading message; its ephemeral flag is ignored
            message = inter.original
            self._check_ephemeral_kept(inter, message, body)
            message.apply(body, edit=False)
            inter.loading = False
            inter._visible.set()
        else:
            message = self._new_message(inter, body, 0)
            inter.followups.append(message)
        if request.query.get("wait", "").lower() not in ("1", "true"):
            return web.Response(status=204)
        return json_response(message.payload())
