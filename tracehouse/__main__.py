import sys

from tracehouse.cli import main

sys.exit(main())
