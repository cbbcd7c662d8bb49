"""The domain: the hot-path service (every formula of docs/domain.md), its records, formatting, eligibility."""
