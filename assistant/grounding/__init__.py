"""The grounding check: every sentence of an answered reply is supported by the passage it cites."""
