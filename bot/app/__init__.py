"""The application assembled: the container, settings, the nextcord client, background work, metrics."""
