from digitize.cli import main

main()
