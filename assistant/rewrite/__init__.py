"""Rewriting: a follow-up question understood with the conversation before it."""
