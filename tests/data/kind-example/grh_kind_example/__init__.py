"""An example gateway kind: kind.toml and signatures.toml beside this file."""
