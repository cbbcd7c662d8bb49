"""Every text a member can read that is not built from data: error messages (docs/domain.md)."""

from __future__ import annotations

NOT_CONFIGURED = "This server is not configured. Please contact an administrator."
NOT_A_MEMBER = "You are not on this server's board yet. Administrators add members from the holder list."
NOT_RANKED = "Could not find your position in the eligibility rankings. Your conviction score may be too low to rank."
GUILD_ONLY = "This command only works inside a server."
STALE_BUTTONS = "This button no longer leads anywhere. Use `/leaderboard` to open the board again."
NOT_YOUR_BUTTONS = "These buttons belong to someone else's leaderboard. Use `/leaderboard` to open your own."

# What went wrong, per command, when the cause is ours and not the member's.
FAILED = {
    "position": "An error occurred while loading your position. Please try again.",
    "threshold": "An error occurred while loading the threshold. Please try again.",
    "leaderboard": "An error occurred while loading the leaderboard. Please try again.",
    "naib": "An error occurred while loading Naib Council data. Please try again.",
    "alerts": "Alerts are not available right now. Please try again in a minute.",
    "roles": "The roles are not available right now. Please try again in a minute.",
    "backends": "The backends' status is not available right now. Please try again in a minute.",
}


def slow_down(retry_after_seconds: float) -> str:
    seconds = max(1, round(retry_after_seconds))
    return f"You are using commands too quickly. Please try again in {seconds} s."
