from igpg_zoo.cli.app import main

main()
