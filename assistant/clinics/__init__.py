"""Clinics: their registry (keys, documents, approvals, audit) and their own reviewed documents."""
