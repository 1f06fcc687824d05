import sys

from cmdnet.cli import main

sys.exit(main())
