"""The configuration: loading and validating the TOML file, and `aiki-hooks init`, which writes one."""
