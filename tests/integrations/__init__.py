"""Integrations with orchestrators, against the real engines on this machine."""
