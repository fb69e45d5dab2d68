"""Small pieces every layer uses: errors and exit codes, typed TOML reading, hashing, numbers,
nonces, patterns, running programs, waiting with a deadline, building HTTP clients. Nothing here
imports the rest of the harness."""
