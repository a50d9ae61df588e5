"""`python -m thinkbudget ...`: the same as the `thinkbudget` command."""

from thinkbudget.cli import main

main()
