"""Small pieces every layer uses: errors and exit codes, typed TOML reading, hashing, numbers,
nonces, patterns, running programs."""
