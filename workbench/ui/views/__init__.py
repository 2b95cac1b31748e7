"""Layouts only: each view arranges one model's parameters; no decisions and no calls here."""
