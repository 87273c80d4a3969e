"""`python -m rlhf_core.zoo build [--quick] [--out DIR]`: rebuild the embedded assets."""

import sys

from .build import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "build":
        print("usage: python -m rlhf_core.zoo build [--quick] [--out DIR] [--seed N]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(args[1:]))
