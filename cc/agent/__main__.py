import sys

from cc.agent.cli import main

sys.exit(main())
