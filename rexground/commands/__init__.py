"""Subcommands of the `rexground` CLI that are not owned by a library subpackage."""
