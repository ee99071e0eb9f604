"""``python -m thunes`` runs the ``thunes`` command."""

from thunes.cli import main

main()
