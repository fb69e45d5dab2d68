"""LiteLLM proxy: its kind.toml and signatures.toml beside this file (harness.targets.kinds)."""
