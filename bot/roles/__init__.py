"""Roles and alerts that follow the board: who should hold which role, the differences, the DMs."""
