"""`python -m nuri` is the `nuri` command."""

from nuri.cli import main

main()
