"""The domain: the hot-path service (every formula of DOMAIN.md), its records, formatting, eligibility."""
