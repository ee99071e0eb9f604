from thunes.cli import main

if __name__ == "__main__":  # a spawned child process re-imports this module
    main()
