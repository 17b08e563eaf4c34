"""`python -m pwlock ...`: the CLI, also as `accelerate launch -m pwlock run CONFIG`."""

from pwlock.cli import main

raise SystemExit(main())
