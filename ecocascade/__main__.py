from ecocascade.cli import main

main()
