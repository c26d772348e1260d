"""Answerability: whether the retrieved passages address what the patient asked, and which do."""
