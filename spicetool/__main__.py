from spicetool.cli import main

main()
