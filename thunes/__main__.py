"""``python -m thunes`` runs the ``thunes`` command."""

from thunes.cli import main

if __name__ == "__main__":  # a spawned child process (API training tasks) re-imports this module
    main()
