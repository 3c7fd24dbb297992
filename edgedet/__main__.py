from edgedet.cli import main

main()
