import sys

from dkron_trio.cli import main

sys.exit(main())
