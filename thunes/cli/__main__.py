from thunes.cli import main

main()
