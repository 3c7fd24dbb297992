"""``python -m edgedet``; guarded, so that a process started with the spawn method, which imports this module
again, does not run the CLI a second time."""

from edgedet.cli import main

if __name__ == "__main__":
    main()
