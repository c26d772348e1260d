"""Composers: turn the passages worth citing into a reply with numbered citations."""
