"""Foundations every other part uses: registry, config checks, target allowlist, hashing, plugins, device, locks, provenance."""
