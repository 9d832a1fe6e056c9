import sys

from cc.sim.cli import main

sys.exit(main())
