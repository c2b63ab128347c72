"""`python -m regbench ...` is the `regbench` command."""

from regbench.cli.main import main

raise SystemExit(main())
