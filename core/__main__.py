import sys

from corolla.cli.main import main

sys.exit(main())
