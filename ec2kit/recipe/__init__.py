"""The recipe engine: TOML playbooks run against instances."""
