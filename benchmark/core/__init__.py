"""Foundations every other part uses.

Registry, config checks, target allowlist, hashing, plugins, device, locks, provenance.
"""
