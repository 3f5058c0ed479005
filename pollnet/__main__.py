"""`python -m pollnet` is the `pollnet` command."""

from pollnet.cli.main import main

if __name__ == "__main__":
    main()
