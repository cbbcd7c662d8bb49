"""Discord plumbing: the dispatcher, delivery inside the 3-second window, embeds, messages, rate limit."""
