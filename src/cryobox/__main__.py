from cryobox.cli.main import main

main()
