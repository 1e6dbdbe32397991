from edgecsi.cli import main

main()
